// The text helpers every JSON writer uses for paths and lock bytes that need not be UTF-8.
#include <agentlock/text.hpp>

#include <gtest/gtest.h>

#include <string>

namespace agentlock {
namespace {

TEST(Text, ValidUtf8IsLeftAsItIs) {
    const std::string valid = "/srv/agents/w\xC3\xA9/\xE2\x82\xAC/\xF0\x9F\x94\x92 x";
    EXPECT_EQ(to_valid_utf8(valid), valid);
    EXPECT_EQ(escape_invalid_utf8(valid), valid);
    EXPECT_EQ(escape_invalid_utf8(""), "");
}

TEST(Text, InvalidBytesBecomeReplacementCharacters) {
    EXPECT_EQ(to_valid_utf8("a\xFF"
                            "b"),
              "a\xEF\xBF\xBD"
              "b");
}

// Each byte outside a valid sequence is written \xNN, as the logs write it; the valid sequences
// around it are kept.
TEST(Text, InvalidBytesAreEscapedOneByOne) {
    EXPECT_EQ(escape_invalid_utf8("bad\xFF\nname"), "bad\\xff\nname");
    EXPECT_EQ(escape_invalid_utf8("\x80\xC3\xA9\xC3"), "\\x80\xC3\xA9\\xc3");   // lone, é, cut
    EXPECT_EQ(escape_invalid_utf8("\xC0\xAF"), "\\xc0\\xaf");                   // overlong '/'
    EXPECT_EQ(escape_invalid_utf8("\xED\xA0\x80"), "\\xed\\xa0\\x80");          // a surrogate
    EXPECT_EQ(escape_invalid_utf8("\xF4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); // > U+10FFFF
}

} // namespace
} // namespace agentlock
