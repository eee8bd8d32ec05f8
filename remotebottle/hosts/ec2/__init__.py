"""EC2: one VM per session, made with boto3 and destroyed with everything made for it.

- `api`: the boto3 client, every call's errors translated, lookups filtered on our tags;
- `bootstrap`: what an instance is launched with (user-data, IMDSv2), whom to log in as,
  where SSH may come from, and the host key cloud-init prints on the console;
- `instance`: `Ec2Provider`, which creates the instance, waits for it, and destroys it;
- `teardown`: destroying a session's resources, or the orphans found tagged as ours;
- `pricing`: an instance type's architecture and approximate price, for the preflight.
"""

from remotebottle.hosts.ec2.instance import Ec2Provider

__all__ = ["Ec2Provider"]
