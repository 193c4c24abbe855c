"""Register the executing tier's stack and runnable snapshots.

Run as `python -m support.register_executing CONFIG_JSON` (from the tests
directory, the repository root on PYTHONPATH) with ZENML_STORE_URL and
ZENML_STORE_API_KEY pointing at the server; prints one JSON line of IDs.

The stack is made of ZenML's own flavors that really work here: the `ssh`
orchestrator to the fixture's loopback sshd, an `s3` artifact store on moto,
a `default` container registry (never contacted: images are "pulled" by the
docker stand-in) and the `local` image builder. The build is registered, not
built (no Docker here): its image name is what the stand-in "runs". The
snapshots are compiled on that stack from the project's own code, which
ZenML uploads to the artifact store; the steps download it from there: the
sample training pipeline, the gated test pipeline (twice: once on a build
whose image a test holds), a dynamic pipeline, and the dynamic sample
pipeline that asks before it promotes (`pipelines/approval.py`).
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any
from uuid import UUID

import zenml
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.models import PipelineBuildRequest
from zenml.models.v2.misc.build_item import BuildItem
from zenml.pipelines.build_utils import compute_stack_checksum
from zenml.utils import source_utils


def register_stack(client: Client, config: dict[str, Any]) -> UUID:
    s3 = {
        "path": f"s3://{config['bucket']}/zenml",
        "key": config["s3_key"],
        "secret": config["s3_secret"],
        "client_kwargs": {"endpoint_url": config["s3_endpoint"], "region_name": "us-east-1"},
    }
    ssh = {
        "hostname": "127.0.0.1",
        "port": config["ssh_port"],
        "username": config["ssh_user"],
        "ssh_key_path": config["ssh_key_path"],
        "known_hosts_path": config["known_hosts_path"],
        "remote_workdir": config["remote_workdir"],
        "minimum_free_disk_gb": 0,
        "cleanup_old_files": False,
    }
    components = {
        StackComponentType.ARTIFACT_STORE: ("moto-s3", "s3", s3),
        StackComponentType.ORCHESTRATOR: ("loopback-ssh", "ssh", ssh),
        StackComponentType.CONTAINER_REGISTRY: ("standin-registry", "default", {"uri": "registry.invalid/zenml"}),
        StackComponentType.IMAGE_BUILDER: ("standin-builder", "local", {}),
    }
    ids = {
        kind: client.create_stack_component(name=name, flavor=flavor, component_type=kind, configuration=conf).id
        for kind, (name, flavor, conf) in components.items()
    }
    return client.create_stack(name="executing", components=dict(ids.items())).id


def register_build(client: Client, stack_id: UUID, image: str) -> UUID:
    stack = client.get_stack(stack_id, hydrate=True)
    build = client.zen_store.create_build(
        PipelineBuildRequest(
            project=client.active_project.id,
            is_local=False,
            zenml_version=zenml.__version__,
            python_version=platform.python_version(),
            contains_code=False,
            stack=stack.id,
            stack_checksum=compute_stack_checksum(stack),
            images={"orchestrator": BuildItem(image=image, requires_code_download=True)},
        )
    )
    return build.id


def main() -> None:
    config = json.loads(sys.argv[1])
    # The code uploaded for the steps is the repository's, wherever this runs.
    source_utils.set_custom_source_root(config["source_root"])
    client = Client()
    stack_id = register_stack(client, config)
    client.activate_stack(stack_id)

    from pipelines.approval import approval_pipeline
    from pipelines.training import training_pipeline
    from tests.support.dynamic_pipeline import dynamic_pipeline
    from tests.support.gated_pipeline import gated_pipeline

    out: dict[str, str] = {"stack": str(stack_id)}
    build = register_build(client, stack_id, config["image"])
    snapshot = training_pipeline.with_options(build=build).create_snapshot(name="training-executed")
    out["training"] = str(snapshot.id)
    gated_build = register_build(client, stack_id, config["gated_image"])
    gated = gated_pipeline.with_options(build=gated_build).create_snapshot(name="gated-executed")
    out["gated"] = str(gated.id)
    held_build = register_build(client, stack_id, config["held_image"])
    held = gated_pipeline.with_options(build=held_build).create_snapshot(name="held-executed")
    out["held"] = str(held.id)
    # Its one container (the orchestrator's) runs the gated image's build.
    dynamic = dynamic_pipeline.with_options(build=gated_build).create_snapshot(name="dynamic-executed")
    out["dynamic"] = str(dynamic.id)
    # Dynamic too (`zenml.wait` needs it): its orchestrator container runs
    # the pipeline function and its steps, on the training image's build.
    approval = approval_pipeline.with_options(build=build).create_snapshot(name="approval-executed")
    out["approval"] = str(approval.id)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
