"""nginx's limit_req and limit_conn modules.

  table.py    the shared slot tables (memfd + mmap, fcntl lock), nginx's algorithms on them
  req_table.py, conn_table.py  limit_req's and limit_conn's slots and algorithms on a table
  zones.py    zone declarations and references, reuse across reloads
  config.py   the directives and the compiled per-location Limits
  phase.py    the PREACCESS phase (a location's access_steps), $limit_*_status
"""
