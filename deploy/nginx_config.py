"""Write the nginx configuration that puts several Quantization Explorer replicas behind one address.

    python deploy/nginx_config.py --listen 0.0.0.0:8080 --replica 127.0.0.1:8081 --replica 10.0.0.12:8501 \\
        > /etc/nginx/conf.d/quantization-explorer.conf

prints the ``http``-level part (upstream, cookie map, server) for Debian's ``/etc/nginx/conf.d/``;
``--standalone RUN_DIR`` prints a whole ``nginx.conf`` that keeps its pid file, logs and temporary files in
``RUN_DIR`` (what ``deploy/run_replicas.sh`` runs, as any user). ``deploy/nginx.conf`` is this script's output
for three local replicas, kept in the repo so it can be read and checked (``nginx -t``) without running anything.

What the configuration does, and why:

- **Sticky sessions by cookie.** A Streamlit session lives in the memory of the one process that opened its
  websocket; its file uploads (``PUT /_stcore/upload_file/...``) and media must reach that same process, or
  they fail with HTTP 400. Open-source nginx has no ``sticky`` directive, so the first response sets a random
  ``qe_replica`` cookie (``$request_id``) and ``hash $qe_replica consistent`` maps it to a replica: every later
  request of that browser (page, websocket, uploads) goes to the same one. Unlike ``ip_hash``, a room behind one
  NAT address still spreads over every replica. ``--ip-hash`` switches to ``ip_hash`` for clients that refuse
  cookies.
- **Websocket** upgrade for ``/_stcore/stream``, with day-long timeouts (a participant may idle for an hour).
- **Health.** Open-source nginx checks passively: a replica that refuses connections is taken out for 10 s
  (``max_fails``/``fail_timeout``) and its browsers re-hash to the others (their view comes back from the URL).
  ``/_stcore/health`` passes through for an external monitor; ``run_replicas.sh`` polls each replica's.
- **Static files** (``/static/``: 26 MB of hashed JS, CSS and fonts; a fresh browser fetches 5.2 MB, the Plotly
  chunk alone 4.7 MB) are served by nginx from ``--static-dir`` (Streamlit's own folder, pre-compressed next to
  it by ``run_replicas.sh``: ``gzip_static``), never touching a Python process, and cached for a year
  (``immutable``: their names change with their content). Without ``--static-dir`` they are proxied, gzipped on
  the fly and cached the same way.
- **Uploads**: ``client_max_body_size`` follows ``server.maxUploadSize`` in ``.streamlit/config.toml``, plus
  room for the multipart framing, so nginx and the app refuse the same files.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Multipart framing and headers around an uploaded file, on top of Streamlit's own limit.
UPLOAD_SLACK_MB = 1
#: What Streamlit's static folder holds, for a standalone nginx without Debian's mime.types.
MIME_TYPES = {
    "text/html": "html", "text/css": "css", "application/javascript": "js mjs", "application/json": "json map",
    "image/svg+xml": "svg", "image/png": "png", "image/gif": "gif", "image/x-icon": "ico",
    "font/woff2": "woff2", "font/woff": "woff", "font/ttf": "ttf", "application/wasm": "wasm",
    "text/plain": "txt",
}
GZIP_TYPES = "text/css application/javascript application/json image/svg+xml text/plain application/wasm"


def max_upload_mb(config: Path = ROOT / ".streamlit" / "config.toml") -> int:
    """``server.maxUploadSize`` (megabytes) from the app's config; Streamlit's default 200 if unset."""
    with open(config, "rb") as f:
        return int(tomllib.load(f).get("server", {}).get("maxUploadSize", 200))


_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def _address(text: str) -> str:
    if not _ADDRESS.match(text):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def site(listen: str, replicas: list[str], static_dir: str | None = None, upload_mb: int | None = None,
         ip_hash: bool = False) -> str:
    """The ``http``-level configuration: upstream of ``replicas``, cookie map, and the server on ``listen``."""
    if not replicas:
        raise ValueError("at least one replica")
    upload_mb = max_upload_mb() if upload_mb is None else upload_mb
    servers = "\n".join(f"    server {r} max_fails=1 fail_timeout=10s;" for r in replicas)
    balance = "ip_hash;" if ip_hash else "hash $qe_replica consistent;"
    if static_dir:
        static = f"""    location /static/ {{
        alias {static_dir.rstrip('/')}/;
        gzip_static on;
        add_header Cache-Control "public, max-age=31536000, immutable";
        try_files $uri @replicas;
    }}"""
    else:
        static = f"""    location /static/ {{
        proxy_pass http://qe_replicas;
{_PROXY_HEADERS.rstrip()}
        add_header Cache-Control "public, max-age=31536000, immutable";
    }}"""
    return _drop_duplicate_connection(f"""# Quantization Explorer behind nginx: {len(replicas)} replica(s), sticky by cookie.
# Written by deploy/nginx_config.py; see its docstring for what each part is for.

upstream qe_replicas {{
    {balance}
{servers}
    keepalive 16;
}}

# A browser's replica: its qe_replica cookie, or for its first request a fresh random id (then set as the cookie).
map $cookie_qe_replica $qe_replica {{
    ""      $request_id;
    default $cookie_qe_replica;
}}

map $http_upgrade $qe_connection_upgrade {{
    default upgrade;
    ""      "";
}}

server {{
    listen {listen};
    server_name _;

    client_max_body_size {upload_mb + UPLOAD_SLACK_MB}m;
    add_header Set-Cookie "qe_replica=$qe_replica; Path=/; Max-Age=86400; SameSite=Lax; HttpOnly" always;

    gzip on;
    gzip_comp_level 5;
    gzip_min_length 1024;
    gzip_proxied any;
    gzip_vary on;
    gzip_types {GZIP_TYPES};

{static}

    location = /_stcore/health {{
        proxy_pass http://qe_replicas;
{_PROXY_HEADERS.rstrip()}
        access_log off;
    }}

    location /_stcore/stream {{
        proxy_pass http://qe_replicas;
{_PROXY_HEADERS.rstrip()}
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $qe_connection_upgrade;
        proxy_read_timeout 86400s;
        proxy_send_timeout 86400s;
        proxy_buffering off;
    }}

    location / {{
        proxy_pass http://qe_replicas;
{_PROXY_HEADERS.rstrip()}
        proxy_request_buffering off;
        proxy_next_upstream error timeout http_502 http_503;
    }}

    location @replicas {{
        proxy_pass http://qe_replicas;
{_PROXY_HEADERS.rstrip()}
        add_header Cache-Control "public, max-age=31536000, immutable";
    }}
}}
""")


_PROXY_HEADERS = """        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Connection "";
"""


def standalone(run_dir: str, site_text: str) -> str:
    """A whole ``nginx.conf`` around ``site_text`` whose pid, logs and temporary files live in ``run_dir``."""
    run = run_dir.rstrip("/")
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.exists() else "types {\n" + "".join(
        f"        {kind} {ext};\n" for kind, ext in MIME_TYPES.items()) + "    }"
    site_text = "".join(f"    {line}" if line.strip() else line for line in site_text.splitlines(keepends=True))
    return f"""# Standalone nginx for deploy/run_replicas.sh (runs as any user; everything it writes is in {run}).
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    {types}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log {run}/nginx-access.log;
    client_body_temp_path {run}/nginx-tmp/body;
    proxy_temp_path {run}/nginx-tmp/proxy;
    fastcgi_temp_path {run}/nginx-tmp/fastcgi;
    uwsgi_temp_path {run}/nginx-tmp/uwsgi;
    scgi_temp_path {run}/nginx-tmp/scgi;

{site_text}
}}
"""


def _drop_duplicate_connection(text: str) -> str:
    """The websocket block sets ``Connection`` to the upgrade value: drop the keep-alive ``""`` just before it
    (nginx would send both headers)."""
    out, lines = [], text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() == 'proxy_set_header Connection "";' and any(
                "Connection $qe_connection_upgrade" in later for later in lines[i + 1:i + 3]):
            continue
        out.append(line)
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, default="127.0.0.1:8080",
                        help="address:port nginx listens on (0.0.0.0:PORT for a class on the LAN)")
    parser.add_argument("--replica", type=_address, action="append", required=True,
                        help="host:port of one replica (repeat; replicas on other hosts too)")
    parser.add_argument("--static-dir", help="Streamlit's static folder, served by nginx itself")
    parser.add_argument("--upload-mb", type=int, help="defaults to server.maxUploadSize of .streamlit/config.toml")
    parser.add_argument("--ip-hash", action="store_true", help="stick by client address instead of a cookie")
    parser.add_argument("--standalone", metavar="RUN_DIR", help="a whole nginx.conf keeping its files in RUN_DIR")
    args = parser.parse_args(argv)
    text = site(args.listen, args.replica, args.static_dir, args.upload_mb, args.ip_hash)
    sys.stdout.write(standalone(args.standalone, text) if args.standalone else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
