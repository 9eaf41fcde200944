#include "common/address.h"

#include "gtest/gtest.h"

namespace nichandover {
namespace {

TEST(AddressTest, ParsesUnixForms) {
  for (const char* text : {"unix:/run/x.sock", "unix:///run/x.sock", "/run/x.sock"}) {
    auto addr = ParseAddress(text);
    ASSERT_TRUE(addr.ok()) << text << ": " << addr.status();
    EXPECT_EQ(addr->kind, Address::Kind::kUnix);
    EXPECT_EQ(addr->path, "/run/x.sock");
    EXPECT_EQ(addr->GrpcUri(), "unix:/run/x.sock");
  }
}

TEST(AddressTest, ParsesTcpForms) {
  auto v4 = ParseAddress("127.0.0.1:7401");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 7401);
  EXPECT_EQ(v4->GrpcUri(), "127.0.0.1:7401");
  auto v6 = ParseAddress("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->GrpcUri(), "[::1]:80");
}

TEST(AddressTest, RejectsMalformedWithReason) {
  struct Case {
    const char* text;
    const char* expected_fragment;
  } cases[] = {
      {"", "empty"},
      {"localhost", "expected unix:/PATH or HOST:PORT"},
      {"localhost:http", "not a number"},
      {"localhost:70000", "0..65535"},
      {"::1:80", "[ADDR]:PORT"},
      {"[::1]80", "[IPv6]:PORT"},
      {":80", "host is empty"},
      {"unix:", "no path"},
  };
  for (const auto& c : cases) {
    auto addr = ParseAddress(c.text);
    ASSERT_FALSE(addr.ok()) << c.text;
    EXPECT_EQ(addr.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(addr.status().message().find(c.expected_fragment), std::string::npos)
        << c.text << " -> " << addr.status();
  }
}

TEST(AddressTest, RoundTripsThroughToString) {
  for (const char* text : {"unix:/a/b", "h:1", "[fe80::1]:2"}) {
    auto addr = ParseAddress(text);
    ASSERT_TRUE(addr.ok());
    auto again = ParseAddress(addr->ToString());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->GrpcUri(), addr->GrpcUri());
  }
}

}  // namespace
}  // namespace nichandover
