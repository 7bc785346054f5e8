"""The client's stream priorities (RFC 7540 5.3) as nginx 1.22 keeps and uses them
(ngx_http_v2_set_dependency, ngx_http_v2_queue_frame): framing.py reports PRIORITY frames and
the priority of HEADERS (on_priority); this tree orders the streams that wait to send DATA.

A node has a parent (None: the root), a weight (1-256) and children. Its rank is its depth
(1 under the root) and its relative weight is weight/256 times its parent's (1 for the root):
when several streams can send at once, lower rank goes first, then higher relative weight,
then the order they became ready in (nginx's frame queue). Nodes of closed streams stay in the
tree (nginx keeps up to 32); past that the oldest closed one goes and its children take its
place under its parent. A PRIORITY frame can name streams not opened yet, or itself a
descendant of the stream (the descendant then moves up to the stream's old parent first).
"""
from __future__ import annotations

from collections import deque

DEFAULT_WEIGHT = 16
_CLOSED_KEPT = 32


class Node:
    __slots__ = ("sid", "parent", "weight", "children", "closed")

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.parent = None
        self.weight = DEFAULT_WEIGHT
        self.children: list = []
        self.closed = False


class PriorityTree:
    __slots__ = ("nodes", "closed")

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self.closed: deque = deque()

    def _node(self, sid: int) -> Node:
        node = self.nodes.get(sid)
        if node is None:
            node = self.nodes[sid] = Node(sid)
        return node

    def opened(self, sid: int) -> None:
        """A stream began without a priority of its own: a node under the root unless a
        PRIORITY frame placed it already."""
        if sid not in self.nodes:
            self.nodes[sid] = Node(sid)

    def set(self, sid: int, depends_on: int, weight: int, exclusive: bool) -> None:
        node = self._node(sid)
        node.weight = weight
        parent = self.nodes.get(depends_on) if depends_on else None
        if parent is None:
            exclusive = False
        else:
            # a descendant named as the new parent moves to the node's old place first
            up = parent.parent
            while up is not None:
                if up is node:
                    self._detach(parent)
                    self._attach(parent, node.parent)
                    break
                up = up.parent
        self._detach(node)
        if exclusive:
            for child in parent.children:
                child.parent = node
            node.children.extend(parent.children)
            parent.children = []
        self._attach(node, parent)

    def closed_stream(self, sid: int) -> None:
        node = self.nodes.get(sid)
        if node is None or node.closed:
            return
        node.closed = True
        self.closed.append(node)
        if len(self.closed) > _CLOSED_KEPT:
            self._remove(self.closed.popleft())

    def key(self, sid: int) -> tuple:
        """Sort key: (rank, -relative weight)."""
        node = self.nodes.get(sid)
        rank, rel = 0, 1.0
        path = []
        while node is not None:
            path.append(node.weight)
            node = node.parent
        for weight in reversed(path):
            rank += 1
            rel = rel / 256 * weight
        return rank or 1, -(rel if path else DEFAULT_WEIGHT / 256)

    # ------------------------------------------------------------ tree edits

    def _detach(self, node: Node) -> None:
        parent = node.parent
        if parent is not None:
            parent.children.remove(node)
        node.parent = None

    def _attach(self, node: Node, parent) -> None:
        node.parent = parent
        if parent is not None:
            parent.children.append(node)

    def _remove(self, node: Node) -> None:
        parent = node.parent
        self._detach(node)
        for child in node.children:
            child.parent = None
            self._attach(child, parent)
        node.children = []
        self.nodes.pop(node.sid, None)
