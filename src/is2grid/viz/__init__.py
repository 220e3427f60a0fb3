"""Looking at results: maps, the browser explorer, coastlines."""
