"""The manifest: `claude-bottle.json` models, loading, merging and the JSON Schema.

- `models`: the pydantic models of one file (`ManifestFile`) and the merged `Manifest`;
  `schema()` for editors.
- `fields`: the validated field types (names, host names, env names, headers, ports).
- `load`: reading `$HOME/claude-bottle.json` and `./claude-bottle.json` (`default_paths`,
  `load`, `parse`), merging them, anchoring relative paths to their file.
- `errors`: pydantic's validation errors as one line each, naming the file and JSON path.

Callers use this package's names (`manifest.load(...)`, `manifest.Manifest`); the
submodules are its inside.
"""

from remotebottle.manifest.errors import SCHEMA_HINT
from remotebottle.manifest.fields import (
    RESERVED_ENV,
    EnvName,
    FilePath,
    HeaderName,
    HostKey,
    Hostname,
    IpAddress,
    Line,
    Name,
    Port,
    SshAddress,
    Upstream,
    is_one_line,
)
from remotebottle.manifest.load import default_paths, load, parse, personal_skills_dir
from remotebottle.manifest.models import (
    MANIFEST_NAME,
    PROVIDERS,
    Agent,
    Bottle,
    CredProxy,
    Ec2Host,
    Egress,
    FlyHost,
    GitRemote,
    Host,
    LocalHost,
    Manifest,
    ManifestFile,
    Route,
    SshHost,
    schema,
)

__all__ = [
    "MANIFEST_NAME",
    "PROVIDERS",
    "RESERVED_ENV",
    "SCHEMA_HINT",
    "Agent",
    "Bottle",
    "CredProxy",
    "Ec2Host",
    "Egress",
    "EnvName",
    "FilePath",
    "FlyHost",
    "GitRemote",
    "HeaderName",
    "Host",
    "HostKey",
    "Hostname",
    "IpAddress",
    "Line",
    "LocalHost",
    "Manifest",
    "ManifestFile",
    "Name",
    "Port",
    "Route",
    "SshAddress",
    "SshHost",
    "Upstream",
    "default_paths",
    "is_one_line",
    "load",
    "parse",
    "personal_skills_dir",
    "schema",
]
