"""nginx's proxy cache (ngx_http_file_cache.c and the cache parts of ngx_http_upstream.c).

  config.py    proxy_cache_path and the proxy_cache* directives -> a frozen CacheConf per location
  store.py     entries on disk: one file per key (md5 of the key, nginx's `levels` layout), written
               to a temp file and renamed; the key is stored in the entry and compared on every
               read, so a hit never answers for another key.
  manager.py   nginx's cache manager, run by one worker: `inactive`, then least recently used
               while at `max_size`, the keys zone's watermark or `min_free`; `manager_*` pacing
  policy.py    whether and how long a response may be cached (Cache-Control, Expires,
               X-Accel-Expires, Set-Cookie, Vary, proxy_cache_valid, proxy_ignore_headers)
  serve.py     a response from an entry: conditional requests (304/412), Range (206/416), HEAD
  lookup.py    a request's lookup: MISS/BYPASS/EXPIRED/STALE/UPDATING/HIT, the lock, min_uses,
               the background update (CacheState, Kind)
  ending.py    how a caching exchange ends: the entry written, REVALIDATED/STALE answers from it
  wire_http1.py  proxy_cache's HTTP/1.x wire (the cacheable response's head)
  exchange.py  the proxy_cache content handler and the proxy exchange that stores what it streams
  fastcgi.py   fastcgi_cache: the FastCGI exchange that stores, its wire
"""
