"""The access phase (nginx's NGX_HTTP_ACCESS_PHASE): phase.py runs it, rules.py is allow/deny,
basic.py is auth_basic, passwd.py the password formats."""
