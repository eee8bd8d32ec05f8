"""Transports to a remote host: one SSH connection per host, and a Docker socket forwarded over it.

- `ssh`: `SshConnection` (paramiko) with strict host keys, `~/.ssh/config` and keepalives;
  `fetch_host_key` asks a host for its key without logging in.
- `known_hosts`: reading, checking and writing known_hosts (`trust`, for `rbottle hosts trust`).
- `ssh_auth`: logging in with keys from ssh-agent and identity files.
- `docker_tunnel`: `DockerTunnel`, a private local unix socket forwarded to the remote
  Docker socket through `direct-streamlocal@openssh.com` channels of that one connection.

The submodules import paramiko and docker; this package itself imports neither, so that
`rbottle --help` stays fast.
"""
