"""The Docker backend: drives any engine through a `docker.DockerClient` it is given."""
