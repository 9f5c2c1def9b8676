"""pybuild: Dockerfiles to OCI images.

The frontend (pure Python, no I/O beyond reading files):

    from pybuild.parser import parse_file            # Dockerfile -> pybuild.ast.Dockerfile
    from pybuild.frontend import plan                 # -> BuildPlan (stages in dependency order)
    from pybuild.dockerignore import ContextFilter    # .dockerignore + context walk/globbing

    df = parse_file("ctx/Dockerfile")
    bp = plan(df, target=None, build_args={"V": "1"}, platform="linux/amd64",
              build_contexts=["name"], resolve_config=lambda base: image_config_json_or_None)
    for level in bp.levels():                         # stages that can run in parallel
        for stage in level:
            stage.base                                # Base(kind=scratch|stage|image|context, ...)
            for step in stage.steps:                  # Step: expanded instruction, argv/env (RUN),
                step.created_by, step.empty_layer     # source/dest (COPY/ADD), config after it,
                                                      # args_used (cache key), BuildKit history text
    cf = ContextFilter.for_build("ctx", "ctx/Dockerfile")
    cf.match_sources("src/*.go"); list(cf.walk("src"))

Errors are pybuild.errors.BuildError subclasses whose str() is the one-line user message
(`Dockerfile:7: unknown instruction: FORM`).
"""
