"""nginx's static modules as ngate's default content handler: static, index, autoindex,
try_files, range, not_modified and expires (see handler.py for the order they run in)."""
