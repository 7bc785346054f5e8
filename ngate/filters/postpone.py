"""Postponed output (nginx's ngx_http_postpone_filter_module): subrequests whose bodies go into
the main response in order, while they and the main response run at the same time.

Every request that produces output for the client owns a Node: a list of bytes and child Nodes
(one per subrequest it started, in the order it started them). A node is complete when its
writers are done (`open` reaches 0: the content handler finished, the SSI body filter finished
its waits) and every child is complete. The root is the main request's.
`Root.kick()` walks the tree from the front and sends what is ready: bytes in front of the first
incomplete child go out at once (nginx sends the active request's output, and queues the rest).

A response whose filters include a postponing filter (ssi, addition) gets a PostponeChain as its
body filter:

    pre filters (gunzip, sub, charset, ssi) -> the request's Node -> [main only] post filters
    (gzip) -> emit(bytes): the content handler's own output path (chunk framing, counting, write)

Its data()/flush()/finish() return b"": everything goes out through `emit`, which the content
handler sets (`attach`). When finish() leaves subrequests running, `deferred` is True and the
handler's end (last chunk, finish_request) runs later through the `on_end` it passed to attach.

gunzip in front (an upstream's gzip body for a client without gzip) keeps its output bounded here
too: the chain says `pending` while gunzip holds more and `more()` inflates the next step into the
node, as filters/drain.py drives a plain chain. While the node's output waits behind a running
subrequest (`blocked`), inflating more would only queue it in memory: drain.py stops, and the
root calls the `wake` it left once the queue went out.

A subrequest's body (proxy/subrequest.py SubrequestConn in body mode) is written into its node;
its response head is never sent (nginx sends the main request's head only).
"""
from __future__ import annotations

from ngate.http import log

MAX_DEPTH = 50      # NGX_HTTP_MAX_SUBREQUESTS: the 51st nested subrequest may start no other


class Node:
    __slots__ = ("items", "open", "root", "depth", "sub")

    def __init__(self, root, depth: int) -> None:
        self.items: list = []
        self.open = 0           # writers not done yet (a subrequest, a filter)
        self.root = root
        self.depth = depth
        self.sub = None         # the SubrequestConn writing into it

    def write(self, data: bytes) -> None:
        if data:
            items = self.items
            if items and items[-1].__class__ is bytearray:
                items[-1] += data
            else:
                items.append(bytearray(data))

    def child(self) -> "Node":
        n = Node(self.root, self.depth + 1)
        n.open = 1              # the subrequest writing into it
        self.items.append(n)
        return n

    def release(self) -> None:
        """One writer of this node is done."""
        self.open -= 1
        if self.root is not None:
            self.root.kick()


def _drain(node: Node, out: list) -> bool:
    """Move what is ready from the front of `node` to `out`; whether node is complete."""
    items = node.items
    k = 0
    done = True
    for it in items:
        if it.__class__ is bytearray:
            out.append(bytes(it))
        elif not _drain(it, out):
            done = False
            break
        k += 1
    if k:
        del items[:k]
    return done and node.open <= 0


def drain(node: Node) -> list:
    """What `node` holds now, as a list of bytes (an in-memory subrequest's output)."""
    out: list = []
    _drain(node, out)
    return out


class Root:
    """The main request's output tree and where it goes."""
    __slots__ = ("node", "post", "emit", "on_end", "kicking", "again", "ended", "subs", "ctx",
                 "wake")

    def __init__(self, ctx, post) -> None:
        self.ctx = ctx
        self.node = Node(self, 0)
        self.post = post                # body filters after the postpone point (gzip)
        self.emit = None
        self.on_end = None
        self.kicking = False
        self.again = False
        self.ended = False
        self.subs: list = []            # SubrequestConns started for this response
        self.wake = None                # filters/drain.py: resume gunzip once the queue went out

    def kick(self) -> None:
        if self.kicking:
            self.again = True
            return
        self.kicking = True
        try:
            while True:
                self.again = False
                self._send()
                if not self.again:
                    break
        finally:
            self.kicking = False

    def _send(self) -> None:
        if self.ended or self.emit is None:
            return
        conn = self.ctx.conn
        if conn.closing:
            return self.cancel()
        out: list = []
        complete = _drain(self.node, out)
        data = b"".join(out) if out else b""
        post = self.post
        if post is not None:
            if data:
                data = post.data(data)
            if complete:
                data += post.finish()
        if data:
            self.emit(data)
        wake = self.wake
        if wake is not None and not self.node.items:
            self.wake = None
            import asyncio
            asyncio.get_running_loop().call_soon(wake)      # not from inside a more() step
        if complete:
            self.ended = True
            end = self.on_end
            self.on_end = None
            if end is not None:
                end()

    def complete(self) -> bool:
        return self.ended

    def cancel(self) -> None:
        """The client went away: stop every subrequest still running."""
        self.ended = True
        self.on_end = None
        subs = self.subs
        self.subs = []
        for s in subs:
            if not s.finished:
                s.cancel()


class PostponeChain:
    """The body filter of a response with subrequests (see the module docstring)."""
    __slots__ = ("ctx", "pre", "node", "root", "before", "after", "started", "deferred",
                 "gunzip")

    def __init__(self, ctx, bodies: list) -> None:
        self.ctx = ctx
        k = max(i for i, b in enumerate(bodies) if getattr(b, "postpones", False))
        post = [b for b in bodies[k + 1:]]
        pre = [b for b in bodies[:k + 1] if not getattr(b, "addition", False)]
        add = [b for b in bodies[:k + 1] if getattr(b, "addition", False)]
        self.before = add[0].before if add else None
        self.after = add[0].after if add else None
        conn = ctx.conn
        node = getattr(conn, "node", None) if ctx.main is not None else None
        if ctx.main is None:
            from ngate.filters import Chain
            self.root = Root(ctx, None if not post else post[0] if len(post) == 1
                             else Chain(post))
            node = self.root.node
        else:
            if node is None:            # in memory (include set=), or dropped (auth_request)
                node = Node(None, 0)
                if getattr(conn, "memory", None) is not None:
                    conn.mem_node = node
            self.root = node.root
        self.node = node
        node.open += 1                  # this filter is one writer until finish()
        for b in pre:
            if getattr(b, "postpones", False):
                b.attach(node)
        self.pre = pre
        self.started = False
        self.deferred = False
        self.gunzip = pre[0] if pre and hasattr(pre[0], "more") else None    # bounded output

    @property
    def pending(self) -> bool:
        """gunzip holds more output (filters/drain.py calls more() as the client takes it)."""
        g = self.gunzip
        return g is not None and g.pending

    @property
    def blocked(self) -> bool:
        """This request's output waits behind a running subrequest: more would only queue."""
        return self.root is not None and bool(self.node.items)

    def more(self) -> bytes:
        data = self.gunzip.more()
        for f in self.pre[1:]:
            data = f.data(data)
        self.node.write(data)
        if self.root is not None:
            self.root.kick()
        return b""

    def attach(self, emit, on_end=None) -> None:
        """The content handler's output path (main request only)."""
        root = self.root
        if root is not None and self.ctx.main is None:
            root.emit = emit
            root.on_end = on_end

    def _start(self) -> None:
        self.started = True
        if self.before is not None:
            from ngate.filters.addition import include
            include(self.ctx, self.node, self.before)

    def data(self, data: bytes) -> bytes:
        if not self.started:
            self._start()
        for f in self.pre:
            data = f.data(data)
        self.node.write(data)
        if self.root is not None:
            self.root.kick()
        return b""

    def flush(self) -> bytes:
        if self.root is not None:
            self.root.kick()
        return b""

    def finish(self) -> bytes:
        if not self.started:
            self._start()
        data = b""
        for f in self.pre:
            data = f.data(data) + f.finish() if data else f.finish()
        self.node.write(data)
        if self.after is not None:
            from ngate.filters.addition import include
            include(self.ctx, self.node, self.after)
        self.node.open -= 1
        root = self.root
        if root is not None:
            root.kick()
            self.deferred = self.ctx.main is None and not root.ended
        return b""


class PostponeWriter:
    """The connection's writer once the content handler is done and subrequests still run."""
    __slots__ = ("root", "ctx")

    def __init__(self, root: Root, ctx) -> None:
        self.root = root
        self.ctx = ctx

    def downstream_paused(self) -> None:
        pass

    def downstream_resumed(self) -> None:
        pass

    def client_gone(self) -> None:
        self.root.cancel()
        conn = self.ctx.conn
        if conn.writer is self:
            conn.writer = None
        if not self.ctx.logged:
            log.log_request(self.ctx)


def attach(body, emit) -> None:
    """A content handler's output path for a postponing body filter (no-op for others)."""
    if body.__class__ is PostponeChain:
        body.attach(emit)


def defer_end(body, ctx, end) -> bool:
    """After body.finish(): when subrequests still run, `end` (the last chunk, finish_request)
    runs once they are done and True is returned; else False (end now)."""
    if body.__class__ is not PostponeChain or not body.deferred:
        return False
    root = body.root
    root.on_end = end
    ctx.conn.writer = PostponeWriter(root, ctx)
    return True
