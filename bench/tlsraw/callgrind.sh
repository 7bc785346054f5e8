#!/bin/bash
# usage: callgrind.sh KIND TREE PORT N [http] -> user-space instructions (callgrind Ir) per request
# of the server (KIND ngate: python -m ngate from TREE; nginx), one keep-alive connection,
# sequential requests, after 300 warm-up requests; by shared object.
# Instruction counts do not depend on the machine's load (the shared machine's timings do).
# Certificates: $TLSRAW_DIR (default /tmp/tlsraw-bench; bench/tlsraw/run.py makes them).
# Example: bench/tlsraw/callgrind.sh ngate /tmp/main-export 18631 2000
KIND=$1; TREE=$(cd "$2" && pwd); PORT=$3; N=$4; PLAIN=$5
HERE=$(cd "$(dirname "$0")" && pwd); PY=$(python3 -c "import sys; print(sys.executable)")
D=${TLSRAW_DIR:-/tmp/tlsraw-bench}
W=/tmp/tlsraw-callgrind-$PORT; rm -rf $W; mkdir -p $W/logs
LISTEN="127.0.0.1:$PORT ssl; ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem; ssl_protocols TLSv1.3"
[ "$PLAIN" = http ] && LISTEN="127.0.0.1:$PORT"
cat > $W/nginx.conf <<CONF
daemon off; master_process off; worker_processes 1;
error_log $W/logs/error.log; pid $W/nginx.pid;
events { worker_connections 64; }
http { access_log off; server { listen $LISTEN; keepalive_requests 100000;
location / { return 200 "ok\\n"; } } }
CONF
if [ $KIND = nginx ]; then CMD="/usr/sbin/nginx -p $W/ -c $W/nginx.conf"; else CMD="$PY -m ngate -p $W/ -c $W/nginx.conf"; fi
cd $TREE; valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$W/cg.%p $CMD > $W/vg.log 2>&1 &
VP=$!
for i in $(seq 1 300); do $PY -c "import socket; socket.create_connection(('127.0.0.1',$PORT)).close()" 2>/dev/null && break; sleep 1; done
$PY $HERE/seqclient.py $PORT $VP $N $PLAIN >/dev/null
kill -9 $VP; wait $VP 2>/dev/null   # the dump is written (callgrind_control -d waits for it)
F=$W/cg.$VP.1
IR=$(grep -E "^totals:" $F | awk '{print $2}')
callgrind_annotate --inclusive=no --threshold=100 $F 2>/dev/null > $W/all.txt
python3 - "$W/all.txt" "$N" "$KIND $PLAIN $TREE" "$IR" <<'PY'
import re, sys, collections
path, n, name, total = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
by = collections.Counter()
for line in open(path):
    m = re.match(r"\s*([\d,]+) \(.*?\)\s+(.*)", line)
    if not m or "PROGRAM TOTALS" in line: continue
    ir = int(m.group(1).replace(",", ""))
    o = re.search(r"\[([^\]]+)\]\s*$", m.group(2))
    obj = o.group(1).rsplit("/", 1)[-1] if o else "python"   # inlined lines: no object
    if "libpython" in obj: obj = "python"
    by[obj] += ir
print(f"{name}: {total / n:,.0f} Ir/request: " + ", ".join(f"{k} {v / n:,.0f}" for k, v in by.most_common(8)))
PY
