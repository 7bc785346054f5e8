"""Sequential keep-alive requests on one connection (HTTPS, or `http` last) with callgrind's
instrumentation on for the measured ones only: `seqclient.py PORT VALGRIND_PID N [http]`
(bench/tlsraw/callgrind.sh runs it)."""
import socket, ssl, subprocess, sys, time
port, pid, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
plain = sys.argv[4:] == ["http"]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection(("127.0.0.1", port))
if not plain:
    s = ctx.wrap_socket(s)
REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
def run(k):
    for _ in range(k):
        s.sendall(REQ)
        got = b""
        while not got.endswith(b"ok\n"):
            got += s.recv(4096)
run(300)
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
t = time.time(); run(n); el = time.time() - t
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
print("requests", n, "seconds", round(el, 1))
