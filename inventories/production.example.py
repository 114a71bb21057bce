"""Example production inventory: the MediaNest stack on SSH hosts.

Copy to inventories/production.py and adjust. pyinfra reads this file: every
module-level list is a group; each host is a name or (name, host data).
Use it with `rollout diff day1 -i inventories/production.py`.

Host data every plan needs:
  project_dir      absolute path of the compose project on the host
  compose_file     compose file, relative to project_dir
  compose_project  compose project name (the `com.docker.compose.project` label)
Data the bundled plans refer to as {{ host.data.KEY }}:
  app_port, frontend_port, redis_port, frontend_image
The Docker engine of an SSH host is reached over SSH as well (docker SDK with
ssh://), so the SSH user must be allowed to use docker on that host. Probes
are sent from the controller: publish the probed ports where it can reach
them, or run rollout on the host itself with the @local connector.
"""

_common = {
    "ssh_user": "deploy",  # key-based auth; never put passwords in this file
    "project_dir": "/srv/medianest",
    "compose_file": "docker-compose.production.yml",
    "compose_project": "medianest",
    "app_port": 3000,
    "frontend_port": 3001,
    "redis_port": 6379,
    "frontend_image": "medianest/frontend:latest",
}

# Plans target a group by name (`hosts: app_servers`); hosts are changed one
# at a time, in this order, and the rollout stops at the first host that fails.
app_servers = [
    ("app-1.example.internal", {**_common}),
    ("app-2.example.internal", {**_common, "ssh_port": 2222}),
]
