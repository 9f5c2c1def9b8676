"""`pybuild build`: docker build / buildx build's flags, BuildKit's progress, exit 1 on errors."""

from __future__ import annotations

import argparse
import os
import sys

from pyoci.errors import OCIError

from .cache import default_cache_dir
from .context import parse_build_context
from .errors import BuildError, DockerfileError, StepFailed, source_context
from .progress import Progress, choose_mode
from .solver import BuildOptions, Solver, epoch_from_env

NO_OUTPUT_NOTE = ("WARNING: No output specified. Build result will only remain in the build cache. "
                  "To push result image into registry use --push or to write it out use --output")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybuild", description="Build OCI images from Dockerfiles.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("build", help="build an image from a Dockerfile")
    b.add_argument("context", metavar="CONTEXT")
    b.add_argument("-f", "--file", dest="file", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    b.add_argument("-t", "--tag", dest="tags", action="append", default=[], help="name:tag of the image")
    b.add_argument("--build-arg", dest="build_args", action="append", default=[], metavar="K=V")
    b.add_argument("--target", help="the stage to build")
    b.add_argument("--no-cache", action="store_true", help="do not use the cache (results still refresh it)")
    b.add_argument("--cache-dir", help="cache directory (default $PYBUILD_CACHE or ~/.cache/pybuild)")
    b.add_argument("--platform", help="target platform, e.g. linux/amd64")
    b.add_argument("--build-context", dest="build_contexts", action="append", default=[],
                   metavar="NAME=oci-layout://DIR[:TAG]|docker-image://REF|DIR")
    b.add_argument("--secret", dest="secrets", action="append", default=[], metavar="id=ID,src=FILE")
    b.add_argument("-o", "--output", dest="outputs", action="append", default=[],
                   metavar="type=oci|docker|local|registry,dest=PATH")
    b.add_argument("--push", action="store_true", help="shorthand for --output=type=registry")
    b.add_argument("--load", action="store_true", help="load the image into pycontainerd (via `pyctr load`; $PYCTR_ADDRESS names the socket)")
    b.add_argument("--progress", default="auto", choices=["auto", "plain", "tty", "quiet"])
    b.add_argument("--runtime", default=os.environ.get("PYBUILD_RUNTIME", "pyrunc"),
                   help="pyrunc (default), runc, or a path to a runc-compatible binary")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")
    return p


def _build_args(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise BuildError(f"invalid --build-arg {v!r}")
        if sep:
            out[k] = val
        elif k in os.environ:  # docker: `--build-arg K` takes K from the environment
            out[k] = os.environ[k]
    return out


def _secrets(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        attrs = {}
        for part in v.split(","):
            k, sep, val = part.partition("=")
            if not sep:
                raise BuildError(f"invalid --secret {v!r}: want id=ID,src=FILE")
            attrs[k.strip().lower()] = val.strip()
        sid = attrs.get("id")
        src = attrs.get("src") or attrs.get("source")
        if attrs.get("env") and not src:
            env = attrs["env"]
            if env not in os.environ:
                raise BuildError(f"--secret {v}: environment variable {env} is not set")
            import tempfile

            import atexit

            fd, src = tempfile.mkstemp(prefix="pybuild-secret-")
            os.write(fd, os.environ[env].encode())
            os.close(fd)
            atexit.register(os.unlink, src)
        if not sid:
            sid = os.path.basename(src or "")
        if not sid or not src:
            raise BuildError(f"invalid --secret {v!r}: want id=ID,src=FILE")
        if not os.path.isfile(src):
            raise BuildError(f"--secret {sid}: {src}: no such file")
        out[sid] = os.path.abspath(src)
    return out


def build(args: argparse.Namespace) -> int:
    progress = Progress(choose_mode("quiet" if args.quiet else args.progress))
    try:
        from .outputs import OutputSpec, export, parse_output

        outputs = [parse_output(o) for o in args.outputs]
        if args.load and not any(o.type == "docker" and not o.dest for o in outputs):
            # buildx's --load: a docker-archive handed to the daemon's `load` (here `pyctr load`).
            outputs.append(OutputSpec("docker"))
        if args.push and not any(o.type == "registry" for o in outputs):
            outputs.append(OutputSpec("registry"))
        if not os.path.isdir(args.context):
            raise BuildError(f"unable to prepare context: path {args.context!r} not found")
        contexts = {}
        for spec in args.build_contexts:
            nc = parse_build_context(spec)
            contexts[nc.name] = nc
        opts = BuildOptions(
            context=os.path.abspath(args.context), dockerfile=args.file, target=args.target,
            build_args=_build_args(args.build_args), platform=args.platform, no_cache=args.no_cache,
            cache_dir=args.cache_dir or default_cache_dir(), contexts=contexts, secrets=_secrets(args.secrets),
            runtime=args.runtime, epoch=epoch_from_env())
        if opts.dockerfile is None:
            opts.dockerfile = os.path.join(opts.context, "Dockerfile")
        solver = Solver(opts, progress)
        result = solver.solve()
        for o in outputs:
            v = progress.vertex(f"exporting to {o.type}" + (f" {o.dest}" if o.dest else ""))
            try:
                export(o, result.cache.layout, result.manifest, [l.descriptor() for l in result.chain],
                       args.tags, v.info)
            except BuildError as e:
                v.error(str(e))
                raise
            v.done()
        if not outputs:
            for t in args.tags:
                try:
                    result.cache.layout.tag(t, result.manifest)
                except OCIError:
                    pass
        progress.close()
        if not outputs and not args.quiet:
            print(NO_OUTPUT_NOTE, file=sys.stderr)
        if args.quiet:
            print(result.manifest["digest"])
        return 0
    except StepFailed as e:
        progress.close()
        if progress.mode != "plain" and e.output:
            print(e.output.rstrip("\n"), file=sys.stderr)
        print("------", file=sys.stderr)
        _print_excerpt(e.path, e.line, getattr(e.step, "end_line", e.line))
        print(str(e), file=sys.stderr)
        return 1
    except DockerfileError as e:
        progress.close()
        if e.line > 0:
            _print_excerpt(e.path, e.line, e.line)
        print(str(e), file=sys.stderr)
        return 1
    except (BuildError, OCIError) as e:
        progress.close()
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close()
        print("ERROR: interrupted", file=sys.stderr)
        return 130


def _print_excerpt(path: str, start: int, end: int) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    text = source_context(data, start, end, path)
    if text:
        sys.stderr.write(text)


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.command != "build":
        p.print_help(sys.stderr)
        return 2
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
