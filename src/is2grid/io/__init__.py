"""Reading granules' bytes.

Sources (local, S3, HTTPS), fetch options, retry and error policy, the h5coro adapter, chunk indexes,
decoding, and the reader that plans, fetches and decodes.
"""
