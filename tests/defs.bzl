"""Build rules shared by the integration tests."""

def daemon_cluster_test(name, srcs, deps = [], **kwargs):
    """A gtest that runs real nichandoverd/nicctl processes (tests/testing).

    Adds what every such test links: the API protos, the cluster helper,
    absl, gRPC, protobuf and gtest_main.
    """
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + [
            "//proto:nichandover_v1_cc",
            "//tests/testing:daemon_cluster",
            "@system_deps//:absl",
            "@system_deps//:grpcpp",
            "@system_deps//:gtest_main",
            "@system_deps//:protobuf",
        ],
        **kwargs
    )
