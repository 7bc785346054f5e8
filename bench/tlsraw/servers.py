"""Minimal TLS servers: uvloop SSLProtocol, memory-BIO protocol, raw SSLSocket on add_reader.
usage: servers.py MODE PORT [fork] [mmap] [ra] [rap] [nocache] (bench/tlsraw/run.py starts them)"""
import asyncio, os, socket, ssl, sys, ctypes

mode, port = sys.argv[1], int(sys.argv[2])
fork = "fork" in sys.argv[3:]
mmap = "mmap" in sys.argv[3:]
RA = "ra" in sys.argv[3:]
# "rap": read-ahead, and SSL_has_pending (ctypes) says whether OpenSSL holds more records:
# one read syscall per record and no SSL_ERROR_WANT_READ exception
RAP = "rap" in sys.argv[3:]
RA = RA or RAP
D = os.environ.get("TLSRAW_DIR", "/tmp/tlsraw-bench")
HERE = os.path.dirname(os.path.abspath(__file__))
RESP = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"


def context():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(D + "/cert.pem", D + "/key.pem")
    c.minimum_version = ssl.TLSVersion.TLSv1_3
    c.set_alpn_protocols(["http/1.1"])
    if "nocache" in sys.argv[3:]:
        import _ssl
        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        ptr = ctypes.c_void_p.from_address(id(c) + 16).value
        lib.SSL_CTX_ctrl(ptr, 44, 0x2 | 0x80 | 0x200, None)
    if RA:
        import _ssl
        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        ptr = ctypes.c_void_p.from_address(id(c) + 16).value
        lib.SSL_CTX_ctrl(ptr, 41, 1, None)    # SSL_CTRL_SET_READ_AHEAD
    return c


if RAP:
    import _ssl
    _lib = ctypes.CDLL(_ssl.__file__)
    HAS_PENDING = _lib.SSL_has_pending
    HAS_PENDING.argtypes = [ctypes.c_void_p]
    HAS_PENDING.restype = ctypes.c_int


class Http(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t

    def data_received(self, data):
        n = data.count(b"\r\n\r\n")
        if n:
            self.t.write(RESP * n)


class MemBio(asyncio.Protocol):
    def __init__(self, ctx):
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.hs = True

    def connection_made(self, t):
        self.t = t

    def data_received(self, data):
        self.inc.write(data)
        obj = self.obj
        if self.hs:
            try:
                obj.do_handshake()
                self.hs = False
            except ssl.SSLWantReadError:
                pass
            out = self.out.read()
            if out:
                self.t.write(out)
            if self.hs:
                return
        while self.inc.pending or obj.pending():
            try:
                d = obj.read(65536)
            except ssl.SSLWantReadError:
                break
            if not d:
                self.t.close()
                return
            n = d.count(b"\r\n\r\n")
            if n:
                obj.write(RESP * n)
        out = self.out.read()
        if out:
            self.t.write(out)

    def connection_lost(self, exc):
        pass


BUF = bytearray(65536)
VIEW = memoryview(BUF)


class Raw:
    __slots__ = ("sock", "tls", "fd", "loop", "hs", "out", "ptr", "__weakref__")

    def __init__(self, loop, sock, ctx):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.tls = ctx._wrap_socket(sock, True, None)
        self.ptr = ctypes.c_void_p.from_address(id(self.tls) + 24).value if RAP else None
        self.hs = True
        self.out = None
        loop.add_reader(self.fd, self.readable)

    def readable(self):
        tls = self.tls
        if self.hs:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                return
            except (ssl.SSLError, OSError):
                return self.close()
            self.hs = False
        while True:
            try:
                n = tls.read(65536, BUF)
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLError, OSError):
                return self.close()
            if not n:
                return self.close()
            c = BUF.count(b"\r\n\r\n", 0, n)
            if c:
                try:
                    tls.write(RESP * c)
                except ssl.SSLWantWriteError:
                    pass
            if RAP:
                if not HAS_PENDING(self.ptr):
                    return
            elif not RA:        # read-ahead: read until OpenSSL's buffer is empty too
                return

    def close(self):
        self.loop.remove_reader(self.fd)
        self.sock.close()


def serve():
    ctx = context()
    if mmap:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 131072)    # M_MMAP_THRESHOLD
    import uvloop
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    lsock = LSOCK
    if mode == "uvloop":
        loop.run_until_complete(loop.create_server(Http, sock=lsock, ssl=ctx, backlog=4096))
    elif mode == "membio":
        loop.run_until_complete(loop.create_server(lambda: MemBio(ctx), sock=lsock, backlog=4096))
    else:
        lsock.setblocking(False)
        conns = set()

        def accept():
            for _ in range(64):
                try:
                    s, _a = lsock.accept()
                except BlockingIOError:
                    return
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns.add(Raw(loop, s, ctx))
        loop.add_reader(lsock.fileno(), accept)
    print("ready", os.getpid(), flush=True)
    loop.run_forever()


LSOCK = socket.socket()
LSOCK.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
LSOCK.bind(("127.0.0.1", port))
LSOCK.listen(4096)
if fork:
    # a master as ngate's: imports, contexts and some heap before the fork
    import uvloop  # noqa
    ctx0 = context()
    junk = [bytes(200) for _ in range(50000)] + [dict(a=i) for i in range(20000)]
    del junk[::3]
    pid = os.fork()
    if pid == 0:
        serve()
    else:
        os.waitpid(pid, 0)
else:
    serve()
