"""Transports to a remote host: one SSH connection per host, and a Docker socket forwarded over it.

- `ssh`: `SshConnection` (paramiko) with strict host keys, `~/.ssh/config`, ssh-agent and
  keepalives; `fetch_host_key` and `trust` for `rbottle hosts trust`.
- `docker_tunnel`: `DockerTunnel`, a private local unix socket forwarded to the remote
  Docker socket through `direct-streamlocal@openssh.com` channels of that one connection.

The submodules import paramiko and docker; this package itself imports neither, so that
`rbottle --help` stays fast.
"""
