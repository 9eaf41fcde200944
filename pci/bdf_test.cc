#include "pci/bdf.h"

#include "gtest/gtest.h"

namespace nichandover {
namespace pci {
namespace {

TEST(BdfTest, ParsesFullAndShortForms) {
  absl::StatusOr<Bdf> full = ParseBdf("0000:03:00.0");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->domain, 0u);
  EXPECT_EQ(full->bus, 3);
  EXPECT_EQ(full->device, 0);
  EXPECT_EQ(full->function, 0);

  absl::StatusOr<Bdf> short_form = ParseBdf("07:1F.7");
  ASSERT_TRUE(short_form.ok()) << short_form.status();
  EXPECT_EQ(short_form->bus, 7);
  EXPECT_EQ(short_form->device, 0x1f);
  EXPECT_EQ(short_form->function, 7);
  EXPECT_EQ(short_form->ToString(), "0000:07:1f.7");

  absl::StatusOr<Bdf> vmd = ParseBdf("10000:e1:00.1");
  ASSERT_TRUE(vmd.ok()) << vmd.status();
  EXPECT_EQ(vmd->domain, 0x10000u);
  EXPECT_EQ(vmd->ToString(), "10000:e1:00.1");
}

TEST(BdfTest, FormatRoundTrips) {
  Bdf bdf{0x0002, 0x01, 0x01, 0x0};
  EXPECT_EQ(bdf.ToString(), "0002:01:01.0");
  absl::StatusOr<Bdf> back = ParseBdf(bdf.ToString());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, bdf);
}

TEST(BdfTest, RejectsMalformedAddressesNamingThePart) {
  struct Case {
    const char* text;
    const char* mentions;
  } cases[] = {
      {"", "separators"},
      {"03:00", "'.'"},
      {"3:00.0", "bus"},
      {"03:20.0", "device 0x20"},
      {"03:00.8", "function 8"},
      {"03:00.10", "function"},
      {"0000:03:00.0.1", "'.'"},
      {"g000:03:00.0", "domain"},
      {"123456789:03:00.0", "domain"},
      {"0000:03:00:00.0", "separators"},
      {"03:0x.0", "device"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Bdf> bdf = ParseBdf(c.text);
    ASSERT_FALSE(bdf.ok()) << c.text;
    EXPECT_EQ(bdf.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(bdf.status().message().find(c.mentions), absl::string_view::npos)
        << c.text << ": " << bdf.status();
  }
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
