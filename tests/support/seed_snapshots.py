"""Register runnable snapshots of the test pipelines on the test server.

Run as `python -m support.seed_snapshots` with ZENML_STORE_URL and
ZENML_STORE_API_KEY pointing at the server; prints one JSON line of IDs.

A server only runs a snapshot made on a non-local stack with a non-local
build. This registers such a stack from built-in flavors that nobody ever
contacts, and a build record for it, without Docker (see
`zenml-server-facts.md`).
"""

import json
import platform

import zenml
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.models import PipelineBuildRequest, PipelineSnapshotRequest
from zenml.models.v2.misc.build_item import BuildItem
from zenml.pipelines.build_utils import compute_stack_checksum

from support.test_pipelines import dynamic_trainer, trainer


def remote_stack_id(client: Client) -> str:
    components = {
        StackComponentType.ARTIFACT_STORE: ("never-contacted-s3", "s3", {"path": "s3://never-contacted/zenml"}),
        StackComponentType.ORCHESTRATOR: ("never-contacted-ssh", "ssh", {"hostname": "ssh.invalid", "username": "zenml"}),
        StackComponentType.CONTAINER_REGISTRY: ("never-contacted-registry", "default", {"uri": "registry.invalid/zenml"}),
        StackComponentType.IMAGE_BUILDER: ("never-contacted-builder", "local", {}),
    }
    ids = {}
    for kind, (name, flavor, config) in components.items():
        ids[kind] = client.create_stack_component(
            name=name, flavor=flavor, component_type=kind, configuration=config
        ).id
    return str(
        client.create_stack(name="never-contacted", components={k: v for k, v in ids.items()}).id
    )


def runnable_copy(client: Client, snapshot_id, stack, name):
    """Copy a snapshot compiled on the local stack onto the remote stack."""
    snapshot = client.get_snapshot(snapshot_id, hydrate=True)
    build = client.zen_store.create_build(
        PipelineBuildRequest(
            project=snapshot.project_id,
            is_local=False,
            zenml_version=zenml.__version__,
            python_version=platform.python_version(),
            contains_code=True,
            stack=stack.id,
            stack_checksum=compute_stack_checksum(stack),
            pipeline=snapshot.pipeline.id,
            images={
                "orchestrator": BuildItem(image="registry.invalid/zenml/trainer:test")
            },
        )
    )
    request = PipelineSnapshotRequest(
        project=snapshot.project_id,
        name=name,
        run_name_template=snapshot.run_name_template,
        pipeline_configuration=snapshot.pipeline_configuration,
        step_configurations=snapshot.step_configurations,
        client_environment=snapshot.client_environment,
        client_version=snapshot.client_version,
        server_version=snapshot.server_version,
        pipeline_version_hash=snapshot.pipeline_version_hash,
        pipeline_spec=snapshot.pipeline_spec,
        is_dynamic=snapshot.is_dynamic,
        stack=stack.id,
        pipeline=snapshot.pipeline.id,
        build=build.id,
    )
    return client.zen_store.create_snapshot(request)


def main() -> None:
    client = Client()
    stack = client.get_stack(remote_stack_id(client), hydrate=True)
    out = {}
    local = trainer.create_snapshot(name="trainer-local")
    out["local"] = str(local.id)
    out["trainer"] = str(runnable_copy(client, local.id, stack, "trainer-prod").id)
    out["trainer_v2"] = str(runnable_copy(client, local.id, stack, "trainer-staging").id)
    dyn = dynamic_trainer.create_snapshot(name="dynamic-local")
    out["dynamic"] = str(runnable_copy(client, dyn.id, stack, "dynamic-prod").id)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
