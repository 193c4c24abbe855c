"""Register runnable snapshots of the test pipelines on the test server.

Run as `python -m support.seed_snapshots` with ZENML_STORE_URL and
ZENML_STORE_API_KEY pointing at the server; prints one JSON line of IDs.
It runs with the client of the server's own version (0.85 to 0.98).

A server only runs a snapshot made on a non-local stack with a non-local
build. This registers such a stack from built-in flavors that nobody ever
contacts, and a build record for it, without Docker (see
`zenml-server-facts.md` and `zenml-server-versions.md`).

Servers before 0.90 have no snapshots: there the same names are run
templates made from deployments (their predecessor), and the IDs printed
are the templates'.
"""

import json
import platform

import zenml
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.models import PipelineBuildRequest
from zenml.models.v2.misc.build_item import BuildItem
from zenml.pipelines.build_utils import compute_stack_checksum

from support.test_pipelines import dynamic_trainer, trainer

try:
    from zenml.models import PipelineSnapshotRequest

    HAS_SNAPSHOTS = True
except ImportError:  # before 0.90: deployments and run templates
    from zenml.models import PipelineDeploymentRequest as PipelineSnapshotRequest

    HAS_SNAPSHOTS = False

RELEASE = tuple(int(part) for part in zenml.__version__.split(".")[:3] if part.isdigit())


def orchestrator() -> tuple[str, str, dict[str, str]]:
    # The `ssh` flavor exists from 0.96.4; a never-contacted `kubernetes`
    # orchestrator makes a runnable stack on every version.
    if RELEASE >= (0, 96, 4):
        return ("never-contacted-ssh", "ssh", {"hostname": "ssh.invalid", "username": "zenml"})
    return ("never-contacted-k8s", "kubernetes", {"kubernetes_context": "never-contacted"})


def remote_stack_id(client: Client) -> str:
    components = {
        StackComponentType.ARTIFACT_STORE: ("never-contacted-s3", "s3", {"path": "s3://never-contacted/zenml"}),
        StackComponentType.ORCHESTRATOR: orchestrator(),
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
    if HAS_SNAPSHOTS:
        snapshot = client.get_snapshot(snapshot_id, hydrate=True)
    else:
        snapshot = client.get_deployment(snapshot_id, hydrate=True)
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
    fields = dict(
        project=snapshot.project_id,
        run_name_template=snapshot.run_name_template,
        pipeline_configuration=snapshot.pipeline_configuration,
        step_configurations=snapshot.step_configurations,
        client_environment=snapshot.client_environment,
        client_version=snapshot.client_version,
        server_version=snapshot.server_version,
        pipeline_version_hash=snapshot.pipeline_version_hash,
        pipeline_spec=snapshot.pipeline_spec,
        stack=stack.id,
        pipeline=snapshot.pipeline.id,
        build=build.id,
    )
    if not HAS_SNAPSHOTS:
        deployment = client.zen_store.create_deployment(PipelineSnapshotRequest(**fields))
        return client.create_run_template(name=name, deployment_id=deployment.id)
    if hasattr(snapshot, "is_dynamic"):  # 0.92+
        fields["is_dynamic"] = snapshot.is_dynamic
    return client.zen_store.create_snapshot(PipelineSnapshotRequest(name=name, **fields))


def local_target(pipeline, name):
    """The pipeline compiled on the default (local) stack: not runnable.
    Before 0.90 it is an unnamed deployment (a run template needs a build)."""
    if HAS_SNAPSHOTS:
        return pipeline.create_snapshot(name=name)
    pipeline._prepare_if_possible()
    return pipeline._create_deployment(**pipeline._run_args, skip_schedule_registration=True)


def main() -> None:
    client = Client()
    stack = client.get_stack(remote_stack_id(client), hydrate=True)
    out = {}
    local = local_target(trainer, "trainer-local")
    if HAS_SNAPSHOTS:
        out["local"] = str(local.id)
    out["trainer"] = str(runnable_copy(client, local.id, stack, "trainer-prod").id)
    out["trainer_v2"] = str(runnable_copy(client, local.id, stack, "trainer-staging").id)
    if dynamic_trainer is not None:
        dyn = dynamic_trainer.create_snapshot(name="dynamic-local")
        out["dynamic"] = str(runnable_copy(client, dyn.id, stack, "dynamic-prod").id)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
