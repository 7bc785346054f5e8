"""Sans-IO FastCGI client: records (records.py) and CGI response heads (cgi.py). No asyncio."""
