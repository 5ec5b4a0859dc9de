"""Configuration resolved once: CLI flags > MODELREG_* environment > config file > defaults.

`Settings.resolve()` is the only place that reads the environment or the config
file; every other module receives a `Settings` (or a `RemoteSpec`) as an argument.
The config file is TOML (`config.toml` in the config directory):

    default_model = "emotion"
    default_remote = "team"
    data_dirs = ["/data/wav2vec"]
    stall_timeout = 30          # seconds without a byte from a remote before giving up
    trusted_keys = ["/etc/modelreg/release.pub"]
    cache_max_size = "20G"      # evict least recently used versions after a pull (modelreg.local.prune)
    yank_check_interval = 3600  # seconds a cached version's "not yanked" answer is trusted

    [remotes.team]
    url = "s3://models/speech"
    endpoint_url = "https://minio.internal:9000"

    [remotes.mirrored]                 # fallbacks: tried in order after url (modelreg.fallback)
    url = "file:///nas/registry"
    fallbacks = [{ url = "s3://models/speech", endpoint_url = "https://minio.internal:9000" },
                 { url = "ssh://models@backup/srv/registry", identity_file = "~/.ssh/models" }]

Credentials are never stored here: S3 uses boto3's own chain, SSH uses ~/.ssh and the agent.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from modelreg.errors import ConfigError, UsageError
from modelreg.storage.base import DEFAULT_STALL_TIMEOUT, stall_timeout_of
from modelreg.storage.schemes import BACKENDS, backend_for_url, check_remote_options, storable_option_keys
from modelreg.units import parse_size

APP = "modelreg"
DEFAULT_MODEL_NAME = "emotion"
REMOTE_OPTION_KEYS = storable_option_keys()
"""Options a remote may store, from the backend table (`modelreg.storage.schemes`)."""
URL_SCHEMES = tuple(BACKENDS)
DEFAULT_YANK_CHECK_INTERVAL = 3600.0


@dataclass(frozen=True)
class RemoteSpec:
    """A registry location: its URL plus backend options (endpoint, region, key file...).

    `fallbacks` are further places holding the same registry, tried in order after
    `url` by pull (and by push --all); everything else uses `url` alone.
    """

    url: str
    name: str | None = None
    options: dict = field(default_factory=dict)
    fallbacks: tuple[RemoteSpec, ...] = ()

    @property
    def places(self) -> tuple[RemoteSpec, ...]:
        """Every URL in order, the primary first, each as a spec of its own (without fallbacks)."""
        return (replace(self, fallbacks=()), *self.fallbacks) if self.fallbacks else (self,)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.url})" if self.name else self.url


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where things are."""

    config_path: Path
    cache_dir: Path
    local_registry: Path
    workspace: Path
    """Where pins (`manifests/<name>/<version>.json`) and `manifests/trusted_keys/` are read and written."""
    default_model: str = DEFAULT_MODEL_NAME
    default_remote: str | None = None
    remotes: dict = field(default_factory=dict)
    data_dirs: tuple = ()
    data_dir_env: str | None = None
    trusted_keys: tuple = ()
    signing_key: str | None = None
    ssh_passphrase: str | None = field(default=None, repr=False)
    ssh_bulk: str = "openssh"
    """How SSH moves large files: "openssh" (an `ssh` process, see storage/ssh/openssh) or
    "paramiko" (`MODELREG_SSH_BULK`)."""
    key_passphrase: str | None = field(default=None, repr=False)
    workspace_origin: str = "given"
    """How `workspace` was chosen, for messages: see `find_workspace`."""
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    """Seconds without a byte from a remote before an operation fails (every backend but file://)."""
    stall_timeout_forced: bool = False
    """True when the flag or MODELREG_STALL_TIMEOUT set it: then it beats a remote's own option."""
    offline: bool = False
    """Never contact a remote: pulls are served from the cache (`--offline`, `MODELREG_OFFLINE=1`)."""
    cache_max_size: int | None = None
    """Bytes the cache may hold after a pull (`MODELREG_CACHE_MAX_SIZE`, `cache_max_size`); None: no limit."""
    yank_check_interval: float = DEFAULT_YANK_CHECK_INTERVAL
    """Seconds a cached version is served on the remote's last "not yanked" answer (`modelreg.yanking`)."""

    @property
    def known_hosts_path(self) -> Path:
        """modelreg's own known_hosts, where `--accept-new-host-key` records keys."""
        return self.config_path.parent / "known_hosts"

    @classmethod
    def resolve(cls, env: dict | None = None, workspace: Path | None = None,
                stall_timeout: float | None = None, offline: bool | None = None) -> Settings:
        """Build settings from the environment (default: os.environ) and the config file.

        `stall_timeout` is the command-line flag's value (it wins over
        `MODELREG_STALL_TIMEOUT`, which wins over the config file's `stall_timeout`).

        The workspace is `workspace` when given, else `$MODELREG_WORKSPACE`, else the
        nearest directory at or above the current one that has a `manifests/` folder
        (as git finds its repository), else the current directory. `offline` is the
        flag when given (True), else `$MODELREG_OFFLINE` (1/true/yes/on), else False.
        """
        env = dict(os.environ if env is None else env)
        workspace, workspace_origin = find_workspace(workspace, env.get("MODELREG_WORKSPACE"), Path.cwd())
        home = env.get("MODELREG_HOME")
        if home:
            base = Path(home).expanduser()
            config_dir, cache_dir, data_dir = base, base / "cache", base
        else:
            config_dir = Path(platformdirs.user_config_dir(APP))
            cache_dir = Path(platformdirs.user_cache_dir(APP))
            data_dir = Path(platformdirs.user_data_dir(APP))
        config_path = Path(env.get("MODELREG_CONFIG") or config_dir / "config.toml")
        data = read_config_file(config_path)
        remotes = {}
        for name, table in (data.get("remotes") or {}).items():
            if not isinstance(table, dict) or "url" not in table:
                raise ConfigError(f"Remote {name!r} in {config_path} has no url: "
                                  f"run 'modelreg remote add {name} URL' to fix it.")
            remotes[name] = remote_from_table(name, table)
        forced = stall_timeout if stall_timeout is not None else env.get("MODELREG_STALL_TIMEOUT") or None
        origin = "--stall-timeout" if stall_timeout is not None else "MODELREG_STALL_TIMEOUT"
        stall = stall_timeout_of({"stall_timeout": forced if forced is not None
                                  else data.get("stall_timeout")},
                                 origin if forced is not None else str(config_path))
        return cls(
            config_path=config_path,
            cache_dir=Path(env.get("MODELREG_CACHE") or cache_dir),
            local_registry=data_dir / "registry",
            workspace=workspace,
            workspace_origin=workspace_origin,
            default_model=env.get("MODELREG_MODEL") or data.get("default_model") or DEFAULT_MODEL_NAME,
            default_remote=env.get("MODELREG_REMOTE") or data.get("default_remote"),
            remotes=remotes,
            data_dirs=tuple(data.get("data_dirs") or ()),
            data_dir_env=env.get("MODELREG_DATA_DIR") or None,
            trusted_keys=tuple(data.get("trusted_keys") or ()),
            signing_key=env.get("MODELREG_SIGNING_KEY") or data.get("signing_key"),
            ssh_passphrase=env.get("MODELREG_SSH_PASSPHRASE") or None,
            ssh_bulk=ssh_bulk_of(env.get("MODELREG_SSH_BULK")),
            key_passphrase=env.get("MODELREG_KEY_PASSPHRASE") or None,
            stall_timeout=stall,
            stall_timeout_forced=forced is not None,
            offline=bool(offline) or parse_switch(env.get("MODELREG_OFFLINE"), "MODELREG_OFFLINE"),
            cache_max_size=cache_max_size_of(env.get("MODELREG_CACHE_MAX_SIZE"), data.get("cache_max_size")),
            yank_check_interval=parse_check_interval(env.get("MODELREG_YANK_CHECK_INTERVAL"),
                                                     "MODELREG_YANK_CHECK_INTERVAL",
                                                     data.get("yank_check_interval"), str(config_path)),
        )

    def with_workspace(self, workspace: Path) -> Settings:
        return replace(self, workspace=workspace, workspace_origin="given")

    def remote(self, name_or_url: str | None = None, **overrides) -> RemoteSpec:
        """The remote named or given as URL, else the default one, else the local registry ("local").

        `overrides` (e.g. `accept_new_host_key=True`) are added to the options of each of its places.
        """
        choice = name_or_url or self.default_remote
        spec = self._chosen_remote(choice)
        places = tuple(self._for_use(place, overrides) for place in spec.places)
        return replace(places[0], fallbacks=places[1:]) if spec.fallbacks else places[0]

    def _chosen_remote(self, choice: str | None) -> RemoteSpec:
        if not choice or (choice == "local" and "local" not in self.remotes):
            spec = RemoteSpec(url=self.local_registry.resolve().as_uri(), name="local")
        elif choice in self.remotes:
            spec = self.remotes[choice]
        elif "://" in choice:
            check_remote_url(choice)
            spec = RemoteSpec(url=choice)
        else:
            known = ", ".join(sorted(self.remotes)) or "none"
            raise ConfigError(
                f"Unknown remote {choice!r} (configured: {known}). Add it with "
                f"'modelreg remote add {choice} URL' or pass a URL such as s3://bucket/prefix."
            )
        return spec

    def _for_use(self, spec: RemoteSpec, overrides: dict) -> RemoteSpec:
        """`spec` with the run's options added: `overrides`, the stall timeout, SSH's known_hosts."""
        extra = {k: v for k, v in overrides.items() if v is not None}
        if "stall_timeout" in backend_for_url(spec.url).options and (
                self.stall_timeout_forced or "stall_timeout" not in spec.options):
            extra.setdefault("stall_timeout", self.stall_timeout)
        if urlsplit(spec.url).scheme == "ssh":
            defaults = {"known_hosts": str(self.known_hosts_path), "passphrase": self.ssh_passphrase,
                        "bulk": self.ssh_bulk}
            for key, value in defaults.items():
                if value and key not in spec.options:
                    extra.setdefault(key, value)
        return replace(spec, options={**spec.options, **extra}) if extra else spec


def remote_from_table(name: str, table: dict) -> RemoteSpec:
    """The spec of a `[remotes.NAME]` table (checked by `check_config_values`), fallbacks in order."""
    def place(entry: dict) -> RemoteSpec:
        options = {k: v for k, v in entry.items() if k not in ("url", "fallbacks")}
        return RemoteSpec(url=str(entry["url"]), name=name, options=options)

    return replace(place(table), fallbacks=tuple(place(entry) for entry in table.get("fallbacks") or ()))


def find_workspace(given: Path | str | None, from_env: str | None, cwd: Path) -> tuple[Path, str]:
    """The workspace directory and a phrase saying how it was chosen (for `modelreg paths`)."""
    if given:
        return Path(given).expanduser().absolute(), "given by the caller"
    if from_env:
        return Path(from_env).expanduser().absolute(), "from MODELREG_WORKSPACE"
    start = cwd.absolute()
    for candidate in (start, *start.parents):
        if (candidate / "manifests").is_dir():
            return candidate, ("the current directory (it has manifests/)" if candidate == start
                               else "the nearest parent directory with manifests/")
    return start, "the current directory (no manifests/ found here or above; pins are written here)"


def ssh_bulk_of(value: str | None) -> str:
    """`MODELREG_SSH_BULK`: "openssh" (the default, also when unset or empty) or "paramiko"."""
    text = (value or "").strip().lower() or "openssh"
    if text not in ("openssh", "paramiko"):
        raise ConfigError(f"Invalid MODELREG_SSH_BULK={value!r}: use openssh (large files over the ssh "
                          f"client, the default) or paramiko (everything over paramiko).")
    return text


def parse_switch(value: str | None, name: str) -> bool:
    """An on/off environment variable: unset or empty is off; anything but 1/0, true/false... is an error."""
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"Invalid {name}={value!r}: use 1 (on) or 0 (off).")


def cache_max_size_of(from_env: str | None, from_file: str | int | None) -> int | None:
    """`MODELREG_CACHE_MAX_SIZE`, else the config's `cache_max_size` (checked on reading), in bytes."""
    if from_env:
        try:
            return parse_size(from_env, "MODELREG_CACHE_MAX_SIZE")
        except UsageError as exc:
            raise ConfigError(str(exc)) from None
    return None if from_file is None else parse_size(from_file)
def parse_check_interval(from_env: str | None, env_name: str, from_config, config_origin: str) -> float:
    """`yank_check_interval`: the environment's value, else the config file's, else the default (>= 0)."""
    value, origin = (from_env, env_name) if from_env else (from_config, config_origin)
    if value is None:
        return DEFAULT_YANK_CHECK_INTERVAL
    try:
        seconds = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(f"Invalid yank_check_interval {value!r} (from {origin}): give a number of "
                          f"seconds, 0 or more (0: ask the remote on every pull of a cached version).")
    return seconds


def check_remote_url(url: str) -> str:
    """Reject URLs of an unknown scheme or without a location, naming the forms that work (backend table)."""
    backend_for_url(url)
    return url


def read_config_file(path: Path) -> dict:
    """The parsed config file, or {} when there is none; ConfigError naming the file when invalid.

    Every value is checked by type here, at the boundary (see `check_config_values`),
    so nothing later meets `remotes = 5` or a string where a list of paths belongs.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The config file {path} is not valid TOML ({exc}). "
                          f"Fix or delete it.") from exc
    except RecursionError:
        raise ConfigError(f"The config file {path} is nested too deeply to be a modelreg config. "
                          f"Fix or delete it.") from None
    check_config_values(data, path)
    return data


_STRING_KEYS = ("default_model", "default_remote", "signing_key")
_PATH_LIST_KEYS = ("data_dirs", "trusted_keys")
_STRING_OPTIONS = ("url", "endpoint_url", "region", "profile", "addressing_style", "identity_file",
                   "known_hosts")


def check_config_values(data: dict, path: Path) -> None:
    """Raise ConfigError (naming `path`, the key and the expected form) for a value of the wrong type."""
    from modelreg.layout import check_name

    def bad(key: str, value, expected: str) -> ConfigError:
        return ConfigError(f"In the config file {path}, {key} = {value!r} is invalid: it must be "
                           f"{expected}. Fix or delete that line.")

    for key in _STRING_KEYS:
        if key in data and not isinstance(data[key], str):
            raise bad(key, data[key], "a string in quotes")
    if "default_model" in data:
        try:
            check_name(data["default_model"], "model name")
        except UsageError as exc:
            raise bad("default_model", data["default_model"], "a model name such as \"emotion\"") from exc
    if "cache_max_size" in data:
        try:
            parse_size(data["cache_max_size"])
        except UsageError as exc:
            raise bad("cache_max_size", data["cache_max_size"], 'a size such as "20G", "500MB" or "1.5GiB" '
                      '(K/M/G/T are powers of 1000, KiB/MiB/GiB/TiB of 1024), or a number of bytes') from exc
    for key in _PATH_LIST_KEYS:
        value = data.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise bad(key, value, f'a list of paths, e.g. {key} = ["/path/one", "/path/two"]')
    remotes = data.get("remotes")
    if remotes is None:
        return
    if not isinstance(remotes, dict):
        raise bad("remotes", remotes, "tables such as [remotes.team] with url = \"s3://bucket/prefix\"")
    for name, table in remotes.items():
        if not isinstance(table, dict):
            raise bad(f"remotes.{name}", table, "a table with url = \"...\" (written [remotes." + name + "])")
        _check_remote_table(table, f"remotes.{name}", bad)
        fallbacks = table.get("fallbacks")
        if fallbacks is None:
            continue
        if not isinstance(fallbacks, list) or not all(isinstance(entry, dict) for entry in fallbacks):
            raise bad(f"remotes.{name}.fallbacks", fallbacks,
                      'a list of tables, each with a url, e.g. fallbacks = [{ url = "s3://bucket/prefix", '
                      'endpoint_url = "https://s3.example:9000" }]')
        for number, entry in enumerate(fallbacks, start=1):
            where = f"remotes.{name}.fallbacks[{number}]"
            if not isinstance(entry.get("url"), str) or "fallbacks" in entry:
                raise bad(where, entry, 'a table with a url (and that URL\'s options, no fallbacks of its '
                                        'own), e.g. { url = "ssh://user@host/path" }')
            _check_remote_table(entry, where, bad)
            try:
                check_remote_options(entry["url"], {k: v for k, v in entry.items() if k != "url"})
            except UsageError as exc:
                raise bad(where, entry, f"a valid fallback ({exc})") from exc


def _check_remote_table(table: dict, where: str, bad) -> None:
    """Type checks of one place's keys (a remote's table or one of its fallbacks)."""
    for key in _STRING_OPTIONS:
        if key in table and not isinstance(table[key], str):
            raise bad(f"{where}.{key}", table[key], "a string in quotes")
    attempts = table.get("max_attempts")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
        raise bad(f"{where}.max_attempts", attempts, "a whole number of at least 1, e.g. 5")
    timeout = table.get("connect_timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise bad(f"{where}.connect_timeout", timeout, "a number of seconds above 0, e.g. 10")


def write_config_file(path: Path, data: dict) -> None:
    """Write the config atomically (temp file + rename)."""
    import tomli_w

    from modelreg.local.atomic import atomic_write

    atomic_write(path, tomli_w.dumps(data).encode())


def add_remote(settings: Settings, name: str, url: str, *, options: dict | None = None,
               make_default: bool = False, fallbacks: tuple[RemoteSpec, ...] = ()) -> RemoteSpec:
    """Record a named remote (and optionally make it the default) in the config file.

    `fallbacks` (their URLs and options) are stored in order after `url`.
    """
    from modelreg.layout import check_name

    check_name(name, "remote name")
    tables = []
    for place_url, place_options in ((url, options or {}), *((f.url, f.options) for f in fallbacks)):
        check_remote_url(place_url)
        check_remote_options(place_url, place_options)
        tables.append({"url": place_url, **{k: v for k, v in place_options.items() if v is not None}})
    table = {**tables[0], "fallbacks": tables[1:]} if fallbacks else tables[0]
    data = read_config_file(settings.config_path)
    data.setdefault("remotes", {})[name] = table
    if make_default:
        data["default_remote"] = name
    write_config_file(settings.config_path, data)
    return remote_from_table(name, table)
