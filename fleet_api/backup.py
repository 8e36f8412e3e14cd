"""`simpul-fleet backup` and `simpul-fleet restore`: the database, the broker's data dir
and the fleet's CA key in one archive, taken online.

The archive (`.tar.gz`, mode 0600: it holds the CA key and the fleet's broker password):

    manifest.json      format, when, the database kind, and a SHA-256, mode and owner
                       ("broker" or "root") of every member
    db/fleet.sqlite    SQLite: the online backup API's copy (a consistent snapshot while
                       the fleet writes)
    db/fleet.pgdump    PostgreSQL: `pg_dump --format=custom` (one snapshot transaction)
    broker/...         the broker's data dir: accounts, ACL, tls/ (CA key included),
                       Mosquitto's persistence file (written by rename on each autosave,
                       so a copy is the last autosave), broker.json. Not the log or pid.

Restore checks every SHA-256 before it touches anything, refuses a running broker and a
non-empty target unless --force, writes the database, puts the broker's files back with
their modes and owners, and runs the migrations (an older backup is brought up to date).
"""

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from fleet_api.errors import FleetError

FORMAT = "simpul-backup/1"
SKIP = {"mosquitto.log", "mosquitto.pid", "passwd.lock"}


class BackupError(FleetError):
    """The backup or restore cannot go on; the message says why and what to do."""


def _sqlite_path(url: str) -> Optional[Path]:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _pg_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return url
    raise BackupError(f"database URL {url.split('@')[-1]!r} must start with sqlite:/// or "
                      "postgresql://")


def _run(args: List[str], what: str) -> None:
    tool = shutil.which(args[0])
    if tool is None:
        raise BackupError(f"{args[0]} is not installed: apt-get install postgresql-client")
    proc = subprocess.run([tool, *args[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else proc.returncode}")


def _broker_uid() -> int:
    import pwd

    try:
        return pwd.getpwnam("mosquitto").pw_uid
    except KeyError:
        return -1


def _dump_db(url: str, work: Path) -> Path:
    path = _sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise BackupError(f"{path}: no such database")
        out = work / "fleet.sqlite"
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(out)
        try:
            src.backup(dst)  # consistent while the fleet keeps writing (WAL)
        finally:
            dst.close()
            src.close()
        return out
    out = work / "fleet.pgdump"
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(out),
          "--dbname", _pg_url(url)], "pg_dump")
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(datetime.now(timezone.utc).timestamp())
    tar.addfile(info, io.BytesIO(data))


def backup(db_url: str, broker_data: Optional[str], out: str) -> Dict[str, Any]:
    """Write the archive to `out` atomically; return its manifest."""
    target = Path(out)
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} does not exist")
    members: Dict[str, Dict[str, Any]] = {}
    blobs: Dict[str, bytes] = {}
    broker_uid = _broker_uid()
    with tempfile.TemporaryDirectory(prefix="simpul-backup-") as tmp:
        dump = _dump_db(db_url, Path(tmp))
        blobs[f"db/{dump.name}"] = dump.read_bytes()
        members[f"db/{dump.name}"] = {"mode": 0o600, "owner": "root"}
    if broker_data:
        root = Path(broker_data)
        if not (root / "broker.json").exists():
            raise BackupError(f"{root}: not a broker data dir made by `simpul-fleet broker`")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            if rel.name in SKIP or rel.name.startswith("."):
                continue
            st = path.stat()
            name = f"broker/{rel.as_posix()}"
            blobs[name] = path.read_bytes()
            members[name] = {"mode": st.st_mode & 0o777,
                             "owner": "broker" if st.st_uid == broker_uid else "root"}
    for name, blob in blobs.items():
        members[name]["sha256"] = hashlib.sha256(blob).hexdigest()
    manifest = {"format": FORMAT, "created_at": datetime.now(timezone.utc).isoformat(),
                "database": "sqlite" if _sqlite_path(db_url) else "postgresql",
                "members": members}
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
            for name, blob in blobs.items():
                _add(tar, name, blob, members[name]["mode"])
            raw.flush()
        with open(partial, "rb") as done:
            os.fsync(done.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def read_archive(path: str) -> Dict[str, Any]:
    """Every member's bytes, checked against the manifest; {'manifest', 'blobs'}."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            blobs: Dict[str, bytes] = {}
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith("/") or ".." in member.name:
                    raise BackupError(f"{path}: unexpected member {member.name!r}")
                handle = tar.extractfile(member)
                assert handle is not None
                blobs[member.name] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{path}: not a readable backup ({exc})") from exc
    try:
        manifest = json.loads(blobs.pop("manifest.json"))
    except (KeyError, ValueError) as exc:
        raise BackupError(f"{path}: no valid manifest.json; not a Simpul backup") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    for name, meta in manifest["members"].items():
        blob = blobs.get(name)
        if blob is None or hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise BackupError(f"{path}: {name} is missing or damaged (SHA-256 mismatch); "
                              "nothing was restored")
    return {"manifest": manifest, "blobs": blobs}


def _broker_running(root: Path) -> bool:
    try:
        pid = int((root / "mosquitto.pid").read_text().strip())
        return b"mosquitto" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def _pg_has_devices(url: str) -> bool:
    from sqlalchemy import create_engine, inspect, text

    from fleet_api.db import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            if "devices" not in inspect(conn).get_table_names():
                return False
            return bool(conn.execute(text("SELECT count(*) FROM devices")).scalar())
    finally:
        engine.dispose()


def restore(archive: str, db_url: str, broker_data: Optional[str], force: bool = False
            ) -> Dict[str, Any]:
    got = read_archive(archive)
    manifest, blobs = got["manifest"], got["blobs"]
    sqlite_target = _sqlite_path(db_url)
    kind = "sqlite" if sqlite_target else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(f"the backup holds a {manifest['database']} database; restore it "
                          f"to a {manifest['database']} URL, not {kind}")
    broker_members = {k[len("broker/"):]: v for k, v in manifest["members"].items()
                      if k.startswith("broker/")}
    root = Path(broker_data) if broker_data else None
    if broker_members and root is None:
        raise BackupError("the backup holds broker data: give --broker-data DIR")
    if root is not None and _broker_running(root):
        raise BackupError(f"the broker of {root} is running: stop it (and the fleet) first")
    if not force:
        if sqlite_target is not None and sqlite_target.exists():
            raise BackupError(f"{sqlite_target} exists: use --force to replace it")
        if sqlite_target is None and _pg_has_devices(db_url):
            raise BackupError("the target database holds devices: use --force to replace "
                              "them")
        if root is not None and root.exists() and any(root.iterdir()):
            raise BackupError(f"{root} is not empty: use --force to replace it")
    # Everything checked; now write.
    if sqlite_target is not None:
        sqlite_target.parent.mkdir(parents=True, exist_ok=True)
        tmp = sqlite_target.with_name(f".{sqlite_target.name}.restore")
        tmp.write_bytes(blobs["db/fleet.sqlite"])
        for stale in ("-wal", "-shm"):
            Path(f"{sqlite_target}{stale}").unlink(missing_ok=True)
        os.replace(tmp, sqlite_target)
    else:
        with tempfile.NamedTemporaryFile(suffix=".pgdump") as dump:
            dump.write(blobs["db/fleet.pgdump"])
            dump.flush()
            _run(["pg_restore", "--clean", "--if-exists", "--no-owner",
                  "--dbname", _pg_url(db_url), dump.name], "pg_restore")
    if root is not None:
        _restore_broker(root, broker_members, blobs)
    from fleet_api.db import make_engine, migrate

    engine = make_engine(db_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return dict(manifest)


def _restore_broker(root: Path, members: Dict[str, Dict[str, Any]],
                    blobs: Dict[str, bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    uid = _broker_uid()
    is_root = os.getuid() == 0 and uid >= 0
    if is_root:
        os.chown(root, uid, -1)
        root.chmod(0o750)
    for rel, meta in sorted(members.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blobs[f"broker/{rel}"])
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, meta["mode"])
        if is_root and meta["owner"] == "broker":
            os.chown(tmp, uid, -1)
        os.replace(tmp, path)
    tls = root / "tls"
    if is_root and tls.is_dir():
        import grp

        os.chown(tls, -1, grp.getgrnam("mosquitto").gr_gid)
        tls.chmod(0o750)
