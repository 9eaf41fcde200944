"""Debian's system libraries and code generators as Bazel repositories.

Bazel 4.2.3 (Debian's bazel-bootstrap) in WORKSPACE mode, with no network: every
external repository here is generated from files already on the machine.
"""

def _run(rctx, args):
    res = rctx.execute(args)
    if res.return_code != 0:
        fail("`%s` failed (%d): %s" % (" ".join(args), res.return_code, res.stderr))
    return res.stdout.strip()

def _system_deps_impl(rctx):
    pkg_config = rctx.which("pkg-config")
    if not pkg_config:
        fail("pkg-config not found: run tools/setup")
    build = ['package(default_visibility = ["//visibility:public"])', ""]

    # Symlinked, not referenced by absolute path, so Bazel hashes their content
    # and a package upgrade rebuilds the generated code.
    tools = ["protoc", "grpc_cpp_plugin", "grpc_python_plugin"]
    for tool in tools:
        path = rctx.which(tool)
        if not path:
            fail("%s not found: run tools/setup" % tool)
        rctx.symlink(path, tool)
    build.append("exports_files(%r)" % tools)
    build.append("")

    # One cc_library per group of pkg-config modules. Headers live in
    # /usr/include, a builtin include directory of the autodetected toolchain.
    for name, mods in rctx.attr.modules.items():
        libs = _run(rctx, [str(pkg_config), "--libs"] + mods).split(" ")
        cflags = _run(rctx, [str(pkg_config), "--cflags"] + mods).split(" ")
        libs = [l for l in libs if l] + rctx.attr.extra_linkopts.get(name, [])
        defines = [f[2:] for f in cflags if f.startswith("-D")]
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    linkopts = %r," % libs)
        build.append("    defines = %r," % defines)
        build.append(")")
        build.append("")
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD", "\n".join(build))

system_deps_repository = repository_rule(
    implementation = _system_deps_impl,
    attrs = {
        "modules": attr.string_list_dict(mandatory = True),
        "extra_linkopts": attr.string_list_dict(),
    },
    environ = ["PATH", "PKG_CONFIG_PATH"],
    local = True,
)

def _proto_outs(srcs, suffixes):
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + s for s in suffixes]
    return outs

def cc_grpc_system_library(name, srcs, grpc_srcs = [], deps = [], proto_deps = [], import_roots = [], **kwargs):
    """C++ messages for `srcs` and gRPC stubs for `grpc_srcs` (a subset).

    Generated with the system protoc and grpc_cpp_plugin. The import root is
    the BUILD file's package, so a file at <pkg>/a/b.proto is included as
    "a/b.pb.h" and imported as "a/b.proto". To import protos of another
    package, name its import root (e.g. "proto") in `import_roots`, the
    .proto files in `proto_deps` and their C++ library in `deps`.
    """
    pkg = native.package_name()
    gendir = "$(GENDIR)/" + pkg if pkg else "$(GENDIR)"
    pb_outs = _proto_outs(srcs, [".pb.h", ".pb.cc"])
    grpc_outs = _proto_outs(grpc_srcs, [".grpc.pb.h", ".grpc.pb.cc"])
    paths = " ".join(["--proto_path=" + r for r in [pkg if pkg else "."] + import_roots])
    inputs = " ".join(["$(location %s)" % s for s in srcs])
    grpc_inputs = " ".join(["$(location %s)" % s for s in grpc_srcs])
    cmd = "$(execpath @system_deps//:protoc) %s --cpp_out=%s %s" % (paths, gendir, inputs)
    if grpc_srcs:
        cmd += (" && $(execpath @system_deps//:protoc) %s --grpc_out=%s " +
                "--plugin=protoc-gen-grpc=$(execpath @system_deps//:grpc_cpp_plugin) %s") % (
            paths,
            gendir,
            grpc_inputs,
        )
    native.genrule(
        name = name + "_codegen",
        srcs = srcs + proto_deps,
        outs = pb_outs + grpc_outs,
        tools = ["@system_deps//:protoc", "@system_deps//:grpc_cpp_plugin"],
        cmd = cmd,
    )
    outs = pb_outs + grpc_outs
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["@system_deps//:grpcpp", "@system_deps//:protobuf"],
        **kwargs
    )

def py_grpc_system_library(name, srcs, grpc_srcs = [], **kwargs):
    """Python modules (<base>_pb2.py, <base>_pb2_grpc.py) for Debian's python3-grpcio.

    A filegroup: tests run them with /usr/bin/python3 and PYTHONPATH set to the
    package's directory in the runfiles tree.
    """
    pkg = native.package_name()
    gendir = "$(GENDIR)/" + pkg if pkg else "$(GENDIR)"
    root = pkg if pkg else "."
    pb_outs = _proto_outs(srcs, ["_pb2.py"])
    grpc_outs = _proto_outs(grpc_srcs, ["_pb2_grpc.py"])
    cmd = "$(execpath @system_deps//:protoc) --proto_path=%s --python_out=%s %s" % (
        root,
        gendir,
        " ".join(["$(location %s)" % s for s in srcs]),
    )
    if grpc_srcs:
        cmd += (" && $(execpath @system_deps//:protoc) --proto_path=%s --grpc_out=%s " +
                "--plugin=protoc-gen-grpc=$(execpath @system_deps//:grpc_python_plugin) %s") % (
            root,
            gendir,
            " ".join(["$(location %s)" % s for s in grpc_srcs]),
        )
    native.genrule(
        name = name + "_codegen",
        srcs = srcs,
        outs = pb_outs + grpc_outs,
        tools = ["@system_deps//:protoc", "@system_deps//:grpc_python_plugin"],
        cmd = cmd,
    )
    native.filegroup(name = name, srcs = pb_outs + grpc_outs, **kwargs)

def _rules_cc_stub_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "rules_cc")\n')
    rctx.file("BUILD", "")
    rctx.file("cc/BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        'exports_files(["defs.bzl"])',
        'alias(name = "toolchain_type", actual = "@bazel_tools//tools/cpp:toolchain_type")',
        "",
    ]))
    rctx.file("cc/defs.bzl", "\n".join([
        '"""Offline stand-in for @rules_cc: the native rules of Bazel 4."""',
        "cc_binary = native.cc_binary",
        "cc_import = native.cc_import",
        "cc_library = native.cc_library",
        "cc_proto_library = native.cc_proto_library",
        "cc_shared_library = getattr(native, 'cc_shared_library', None)",
        "cc_test = native.cc_test",
        "cc_toolchain = native.cc_toolchain",
        "cc_toolchain_suite = native.cc_toolchain_suite",
        "fdo_prefetch_hints = native.fdo_prefetch_hints",
        "fdo_profile = native.fdo_profile",
        "objc_import = native.objc_import",
        "objc_library = native.objc_library",
        "",
    ]))

# Debian's bazel-rules-cc 0.0.4 needs a newer Bazel than 4.2 (use_cpp_toolchain).
rules_cc_stub_repository = repository_rule(implementation = _rules_cc_stub_impl)

def _coverage_tools_stub_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "remote_coverage_tools")\n')
    rctx.file("stub.sh", "#!/bin/sh\necho 'coverage tools are not available offline' >&2\nexit 1\n", executable = True)
    rctx.file("BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        'sh_binary(name = "coverage_report_generator", srcs = ["stub.sh"])',
        'sh_binary(name = "lcov_merger", srcs = ["stub.sh"])',
        "",
    ]))

# Test rules depend on @remote_coverage_tools implicitly (a download in Bazel 4).
coverage_tools_stub_repository = repository_rule(implementation = _coverage_tools_stub_impl)
