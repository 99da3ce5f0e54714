"""Helpers shared by the benchmark scripts: timing a whole process with its
peak RSS, a free loopback port, and a throwaway slapd."""
import os, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIX = "dc=example,dc=com"
ADMIN = "cn=admin," + SUFFIX


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def timed(cmd, stdin=None):
    """(seconds, peak RSS in MiB) of one process; exits on failure."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else None,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if stdin is not None:
        p.stdin.write(stdin)
        p.stdin.close()
    _, status, ru = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{p.stderr.read().decode(errors='replace')}")
    return seconds, ru.ru_maxrss / 1024.0


def build_release():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "dirsync")


def slapd_up(base, data_ldif):
    """Starts a throwaway slapd loaded with `data_ldif`; returns its URL."""
    port, tls = free_port(), free_port()
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "slapd-test-server.sh")], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, BASE=base, PORT=str(port), TLSPORT=str(tls), DATA_LDIF=data_ldif,
                            EXTRA_DB_CONFIG='olcLimits: {0}dn.exact="%s" size=unlimited time=unlimited' % ADMIN))
    return f"ldap://127.0.0.1:{port}"


def stop(pid_file):
    """Stops a server by its pid file and waits for it to go."""
    if os.path.exists(pid_file):
        subprocess.run(["kill", open(pid_file).read().strip()])
        for _ in range(100):
            if not os.path.exists(pid_file):
                break
            time.sleep(0.05)


def server_section(port, token_file, scopes, extra=""):
    """`[server]` on `port` with one client, and the schedule off."""
    return (f'[server]\nlisten = "127.0.0.1:{port}"\n{extra}'
            f'[[server.clients]]\nname = "bench"\ntoken_file = "{token_file}"\nscopes = {scopes}\n'
            '[schedule]\nfull = ""\nincremental = ""\n')


def wait_for(url, tries=100):
    """Waits until `url` answers (0.1 s between tries)."""
    import urllib.request
    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)


def serve_up(binary, cfg, port):
    """Starts `dirsync serve`; returns (process, base URL) once /healthz answers."""
    server = subprocess.Popen([binary, "-c", cfg, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    wait_for(base_url + "/healthz")
    return server, base_url


def service_config(work, url, token, scopes, server_extra="", source_extra="", fields='username = "uid"\nfull_name = "cn"\n'):
    """Writes a `dirsync serve` config in `work` (one LDAP source at `url`
    bound as the admin, one client with `token`); returns (path, port)."""
    with open(os.path.join(work, "secret.txt"), "w") as f:
        f.write("secret\n")
    with open(os.path.join(work, "bench.token"), "w") as f:
        f.write(token + "\n")
    port = free_port()
    cfg = os.path.join(work, "dirsync.toml")
    with open(cfg, "w") as f:
        f.write('[store]\npath = "dirsync.db"\n' + server_section(port, "bench.token", scopes, server_extra)
                + f'[[sources]]\nname = "bench"\ntype = "ldap"\nurl = "{url}"\nbind_dn = "{ADMIN}"\n'
                + f'bind_password_file = "secret.txt"\nbase_dn = "{SUFFIX}"\n{source_extra}[sources.fields]\n{fields}'
                + '[safety]\nmax_delete_percent = 100\nmax_delete_count = 1000000\n')
    return cfg, port


def teardown(server, slapd_base, work):
    """Stops the service (if started) and slapd, and removes the work folder."""
    import shutil
    if server:
        server.terminate()
        server.wait(timeout=60)
    stop(os.path.join(slapd_base, "slapd.pid"))
    shutil.rmtree(work, ignore_errors=True)
