// The agent.lock format: Go-compatible parsing and serialisation, RFC 3339 times, and reading and
// writing lock files through a directory fd. A write is atomic (a reader never sees a half-written
// lock), and an unparseable lock is reported with its bytes, never dropped.
#include "test_support.hpp"

#include <agentlock/fd.hpp>
#include <agentlock/lock_file.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <random>
#include <sched.h>
#include <set>
#include <string>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace agentlock {
namespace {

using std::chrono::nanoseconds;
using test::TempDir;

Timestamp at_ns(std::int64_t ns) {
    return Timestamp{nanoseconds{ns}};
}

// 2026-11-27T05:15:43Z in seconds since the epoch.
constexpr std::int64_t k_base_s = 1795756543;

Timestamp base_plus(std::int64_t ns) {
    return at_ns(k_base_s * 1'000'000'000 + ns);
}

testing::AssertionResult invalid_naming(const Result<LockInfo>& r, const std::string& needle) {
    if (r.ok()) {
        return testing::AssertionFailure() << "parsed, expected invalid_lock naming " << needle;
    }
    if (r.error().kind != ErrorKind::invalid_lock) {
        return testing::AssertionFailure() << "wrong error kind: " << r.error().message;
    }
    if (r.error().message.rfind("invalid lock file: ", 0) != 0 ||
        r.error().message.find(needle) == std::string::npos) {
        return testing::AssertionFailure()
               << "message \"" << r.error().message << "\" does not name " << needle;
    }
    return testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// RFC 3339

TEST(Rfc3339, ParsesZeroToNineFractionalDigits) {
    const std::vector<std::pair<std::string, std::int64_t>> cases = {
        {"2026-11-27T05:15:43Z", 0},
        {"2026-11-27T05:15:43.1Z", 100'000'000},
        {"2026-11-27T05:15:43.12Z", 120'000'000},
        {"2026-11-27T05:15:43.123Z", 123'000'000},
        {"2026-11-27T05:15:43.1234Z", 123'400'000},
        {"2026-11-27T05:15:43.12345Z", 123'450'000},
        {"2026-11-27T05:15:43.123456Z", 123'456'000},
        {"2026-11-27T05:15:43.1234567Z", 123'456'700},
        {"2026-11-27T05:15:43.12345678Z", 123'456'780},
        {"2026-11-27T05:15:43.123456789Z", 123'456'789},
        {"2026-11-27T05:15:43.000000001Z", 1},
        {"2026-11-27T05:15:43.0Z", 0},
    };
    for (const auto& [text, ns] : cases) {
        const auto t = parse_rfc3339(text);
        ASSERT_TRUE(t.has_value()) << text;
        EXPECT_EQ(*t, base_plus(ns)) << text;
    }
}

TEST(Rfc3339, OffsetsNameTheSameInstant) {
    EXPECT_EQ(parse_rfc3339("2026-11-27T10:45:43.5+05:30"), base_plus(500'000'000));
    EXPECT_EQ(parse_rfc3339("2026-11-26T22:15:43.5-07:00"), base_plus(500'000'000));
    EXPECT_EQ(parse_rfc3339("2026-11-27T05:15:43+00:00"), base_plus(0));
    EXPECT_EQ(parse_rfc3339("2026-11-27T05:15:43-00:00"), base_plus(0));
    // Crossing a year boundary through the offset.
    EXPECT_EQ(parse_rfc3339("2027-01-01T05:29:59+05:30"), parse_rfc3339("2026-12-31T23:59:59Z"));
}

TEST(Rfc3339, AcceptsWhatGoAcceptsBeyondTheStrictGrammar) {
    // Go's time.Parse(RFC3339) truncates extra fractional digits, takes ',' for '.', and a
    // one-digit hour. Locks carrying these are read as Go reads them.
    EXPECT_EQ(parse_rfc3339("2026-11-27T05:15:43.1234567891234Z"), base_plus(123'456'789));
    EXPECT_EQ(parse_rfc3339("2026-11-27T05:15:43,25Z"), base_plus(250'000'000));
    EXPECT_EQ(parse_rfc3339("2026-11-27T5:15:43Z"), base_plus(0));
}

TEST(Rfc3339, RejectsGarbage) {
    const std::vector<std::string> bad = {
        "",
        "now",
        "2026-11-27",
        "2026-11-27T05:15Z",
        "2026-11-27T05:15:43",       // no zone
        "2026-11-27t05:15:43Z",      // Go takes only upper-case T
        "2026-11-27T05:15:43z",      // and upper-case Z
        "2026-11-27 05:15:43Z",      // no space instead of T
        "2026-13-27T05:15:43Z",      // month
        "2026-00-27T05:15:43Z",      // month
        "2026-11-00T05:15:43Z",      // day
        "2026-11-31T05:15:43Z",      // November has 30 days
        "2026-02-29T05:15:43Z",      // 2026 is not a leap year
        "2026-11-27T24:00:00Z",      // hour
        "2026-11-27T05:60:43Z",      // minute
        "2026-11-27T05:15:60Z",      // no leap seconds, like Go
        "2026-11-27T05:15:43.Z",     // dot without digits
        "2026-11-27T05:15:43+0530",  // offset without colon
        "2026-11-27T05:15:43+5:30",  // one-digit offset hour
        "2026-11-27T05:15:43+24:00", // offset hour out of range
        "2026-11-27T05:15:43+05:60", // offset minute out of range
        "2026-11-27T05:15:43+-5:00", // sign inside the offset
        "2026-11-27T05:15:43Z ",     // trailing text
        " 2026-11-27T05:15:43Z",     // leading text
        "2026-11-27T05:15:43ZZ",     // trailing text
        "26-11-27T05:15:43Z",        // two-digit year
        "+2026-11-27T05:15:43Z",     // sign on the year
        "2026-1-27T05:15:43Z",       // one-digit month
        "2026-11-7T05:15:43Z",       // one-digit day
        "2026-11-27T05:5:43Z",       // one-digit minute
        "2026-11-27T05:15:4Z",       // one-digit second
        std::string("2026-11-27T05:15:43\0Z", 21),
    };
    for (const auto& text : bad) {
        EXPECT_FALSE(parse_rfc3339(text).has_value()) << '"' << text << '"';
    }
}

TEST(Rfc3339, LeapDaysFollowTheGregorianCalendar) {
    EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z").has_value());
    EXPECT_TRUE(parse_rfc3339("2000-02-29T00:00:00Z").has_value());
    EXPECT_FALSE(parse_rfc3339("1900-02-29T00:00:00Z").has_value());
    EXPECT_FALSE(parse_rfc3339("2100-02-29T00:00:00Z").has_value());
}

TEST(Rfc3339, HandlesTimesBefore1970) {
    EXPECT_EQ(parse_rfc3339("1969-12-31T23:59:59.999999999Z"), at_ns(-1));
    EXPECT_EQ(parse_rfc3339("1900-01-01T00:00:00Z"), at_ns(-2208988800LL * 1'000'000'000));
    EXPECT_EQ(format_rfc3339(at_ns(-1)), "1969-12-31T23:59:59.999999999Z");
    EXPECT_EQ(format_rfc3339(at_ns(-2208988800LL * 1'000'000'000)),
              "1900-01-01T00:00:00.000000000Z");
}

TEST(Rfc3339, TimesOutsideTheNanosecondRangeAreRejectedNotClamped) {
    // Go's zero time, written for a zero time.Time, and other years int64 nanoseconds cannot hold.
    EXPECT_FALSE(parse_rfc3339("0001-01-01T00:00:00Z").has_value());
    EXPECT_FALSE(parse_rfc3339("0000-01-01T00:00:00Z").has_value());
    EXPECT_FALSE(parse_rfc3339("9999-12-31T23:59:59.999999999Z").has_value());
    // The exact edges of Timestamp.
    EXPECT_EQ(parse_rfc3339("1677-09-21T00:12:43.145224192Z"), Timestamp::min());
    EXPECT_FALSE(parse_rfc3339("1677-09-21T00:12:43.145224191Z").has_value());
    EXPECT_EQ(parse_rfc3339("2262-04-11T23:47:16.854775807Z"), Timestamp::max());
    EXPECT_FALSE(parse_rfc3339("2262-04-11T23:47:16.854775808Z").has_value());
    // An offset can push an in-range local time out of range.
    EXPECT_FALSE(parse_rfc3339("2262-04-11T23:47:16.854775807-00:01").has_value());
    EXPECT_EQ(format_rfc3339(Timestamp::min()), "1677-09-21T00:12:43.145224192Z");
    EXPECT_EQ(format_rfc3339(Timestamp::max()), "2262-04-11T23:47:16.854775807Z");
}

TEST(Rfc3339, FormatsUtcWithNineDigits) {
    EXPECT_EQ(format_rfc3339(at_ns(0)), "1970-01-01T00:00:00.000000000Z");
    EXPECT_EQ(format_rfc3339(base_plus(123'456'789)), "2026-11-27T05:15:43.123456789Z");
    EXPECT_EQ(format_rfc3339(base_plus(500'000'000)), "2026-11-27T05:15:43.500000000Z");
}

TEST(Rfc3339, FormatThenParseIsTheIdentityAcrossTheWholeRange) {
    std::mt19937_64 rng(20261127);
    std::uniform_int_distribution<std::int64_t> any(std::numeric_limits<std::int64_t>::min(),
                                                    std::numeric_limits<std::int64_t>::max());
    for (int i = 0; i < 20000; ++i) {
        const Timestamp t = at_ns(any(rng));
        const std::string text = format_rfc3339(t);
        ASSERT_EQ(text.size(), 30U) << text;
        ASSERT_EQ(parse_rfc3339(text), t) << text;
    }
}

// ---------------------------------------------------------------------------------------------
// parse_lock

TEST(ParseLock, ReadsWhatTheGoSeedWrites) {
    const auto r = parse_lock(
        test::go_lock_json(4242, "2026-11-27T05:15:43.123456789Z", "gt-beads-crew-dave", "host-a"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid, 4242);
    EXPECT_EQ(r->acquired_at, base_plus(123'456'789));
    EXPECT_EQ(r->session_id, "gt-beads-crew-dave");
    EXPECT_EQ(r->hostname, "host-a");
    EXPECT_FALSE(r->pid_start_ticks.has_value());
    EXPECT_FALSE(r->boot_id.has_value());
}

TEST(ParseLock, GoTimeNowInLocalZonesWithTrimmedDigits) {
    // time.Now() marshals with the local offset and trailing zeros trimmed.
    const std::vector<std::pair<std::string, std::int64_t>> cases = {
        {"2026-11-27T10:45:43.12345678+05:30", 123'456'780},
        {"2026-11-26T21:15:43.9-08:00", 900'000'000},
        {"2026-11-26T22:15:43.000001-07:00", 1'000},
        {"2026-11-27T05:15:43Z", 0},
        {"2026-11-27T06:15:43.5+01:00", 500'000'000},
    };
    for (const auto& [text, ns] : cases) {
        const auto r = parse_lock(test::go_lock_json(7, text, "$3"));
        ASSERT_TRUE(r) << text << ": " << r.error().message;
        EXPECT_EQ(r->acquired_at, base_plus(ns)) << text;
        EXPECT_EQ(r->session_id, "$3");
        EXPECT_EQ(r->hostname, "");
    }
}

TEST(ParseLock, MissingOptionalFieldsAreEmpty) {
    const auto r = parse_lock(R"({"pid": 12, "acquired_at": "2026-11-27T05:15:43Z"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid, 12);
    EXPECT_EQ(r->session_id, "");
    EXPECT_EQ(r->hostname, "");
}

TEST(ParseLock, NullLeavesAFieldUnsetAsInGo) {
    const auto r = parse_lock(R"({"pid": 12, "acquired_at": "2026-11-27T05:15:43Z",
        "session_id": null, "hostname": null, "pid_start_ticks": null, "boot_id": null})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->session_id, "");
    EXPECT_EQ(r->hostname, "");
    EXPECT_FALSE(r->pid_start_ticks.has_value());
    EXPECT_FALSE(r->boot_id.has_value());
}

TEST(ParseLock, UnknownFieldsOfAnyShapeAreIgnored) {
    std::string deep(200, '[');
    deep += std::string(200, ']');
    const auto r = parse_lock(R"({"version": 2, "pid": 12, "agent": {"name": "x", "tags": [1, 2.5,
        true, null, {"a": "b"}]}, "acquired_at": "2026-11-27T05:15:43Z", "note": "h\u00e9",
        "deep": )" + deep + R"(, "pid2": "not a pid"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid, 12);
}

TEST(ParseLock, ReadsOurExtraFields) {
    const auto r = parse_lock(R"({"pid": 12, "acquired_at": "2026-11-27T05:15:43Z",
        "pid_start_ticks": 18446744073709551615, "boot_id": "0b6a3d4e-6f5f-4e0e-9c2b-1f0e8d7c6b5a"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid_start_ticks, std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(r->boot_id, "0b6a3d4e-6f5f-4e0e-9c2b-1f0e8d7c6b5a");
    const auto small = parse_lock(R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z",
        "pid_start_ticks": 0, "boot_id": ""})");
    ASSERT_TRUE(small) << small.error().message;
    EXPECT_EQ(small->pid_start_ticks, 0U);
    EXPECT_EQ(small->boot_id, "");
}

TEST(ParseLock, ReadsTheAgentsTmuxServer) {
    const auto r = parse_lock(R"({"pid": 12, "acquired_at": "2026-11-27T05:15:43Z",
        "session_id": "%3", "tmux_socket": "/tmp/tmux-1000/gt-town-1a2b3c", "tmux_server_pid": 4000})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->tmux_socket, "/tmp/tmux-1000/gt-town-1a2b3c");
    EXPECT_EQ(r->tmux_server_pid, 4000);
}

TEST(ParseTmuxEnv, SocketPathServerPidAndSessionIndex) {
    auto e = parse_tmux_env("/tmp/tmux-1000/default,4242,0");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->socket_path, "/tmp/tmux-1000/default");
    EXPECT_EQ(e->server_pid, 4242);
    // A path may hold commas: the last two fields are the numbers.
    e = parse_tmux_env("/srv/a,b/sock,17,-1");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->socket_path, "/srv/a,b/sock");
    EXPECT_EQ(e->server_pid, 17);
    for (const char* bad : {"", "/tmp/s", "/tmp/s,12", ",12,0", "/tmp/s,x,0", "/tmp/s,0,0",
                            "/tmp/s,-3,0", "/tmp/s,12,", "/tmp/s,12,z", "relative,12,0"}) {
        EXPECT_FALSE(parse_tmux_env(bad)) << bad;
    }
}

TEST(ParseLock, KeysMatchCaseInsensitivelyAsInGo) {
    // encoding/json folds case, and folds U+017F (long s) to s and U+212A (Kelvin) to k.
    const auto r = parse_lock("{\"PID\": 12, \"Acquired_At\": \"2026-11-27T05:15:43Z\", "
                              "\"\xC5\xBF"
                              "ession_id\": \"s\", \"HOSTNAME\": \"h\", "
                              "\"pid_start_tic\xE2\x84\xAA"
                              "s\": 5}");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid, 12);
    EXPECT_EQ(r->session_id, "s");
    EXPECT_EQ(r->hostname, "h");
    EXPECT_EQ(r->pid_start_ticks, 5U);
    // Non-letters must match exactly.
    EXPECT_TRUE(invalid_naming(parse_lock(R"({"pid": 1, "acquired-at": "2026-11-27T05:15:43Z"})"),
                               "\"acquired_at\" is missing"));
}

TEST(ParseLock, ExactDuplicateKeysTakeTheLastValueAsInGo) {
    const auto r = parse_lock(R"({"pid": 0, "acquired_at": "2026-11-27T05:15:43Z", "pid": 4242})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid, 4242);
}

TEST(ParseLock, KeysThatFoldToOneFieldAreInvalid) {
    EXPECT_TRUE(invalid_naming(
        parse_lock(R"({"pid": 0, "acquired_at": "2026-11-27T05:15:43Z", "PID": 4242})"),
        "\"pid\" appears more than once"));
}

TEST(ParseLock, InvalidUtf8InStringsBecomesReplacementCharactersAsInGo) {
    const auto r = parse_lock("{\"pid\": 1, \"acquired_at\": \"2026-11-27T05:15:43Z\", "
                              "\"session_id\": \"a\xFF"
                              "b\xE2\x84\"}");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->session_id, "a\xEF\xBF\xBD"
                             "b\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ParseLock, UnescapesStrings) {
    const auto r = parse_lock(R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z",
        "session_id": "a\u003cb\u003e\u0026\"\\\/\n\t\u00e9\ud83d\ude00"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->session_id, "a<b>&\"\\/\n\t\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(ParseLock, AcceptsAnyPidGoAccepts) {
    // Liveness decides what a PID <= 0 means; the format reads it faithfully.
    for (const std::string pid : {"0", "-1", "-0", "9223372036854775807", "-9223372036854775808"}) {
        const auto r =
            parse_lock(R"({"pid": )" + pid + R"(, "acquired_at": "2026-11-27T05:15:43Z"})");
        ASSERT_TRUE(r) << pid << ": " << r.error().message;
        EXPECT_EQ(std::to_string(r->pid), pid == "-0" ? "0" : pid);
    }
}

TEST(ParseLock, NotJsonIsInvalid) {
    const std::vector<std::string> docs = {
        "",
        "   ",
        "{",
        "{\"pid\": 1,",
        "not json",
        "{\"pid\": 1} trailing",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z",})", // trailing comma
        "{\"pid\": 1 /* comment */, \"acquired_at\": \"2026-11-27T05:15:43Z\"}",
        "{'pid': 1}",
        std::string("{\"pid\": 1, \"acquired_at\": \"2026-11-27T05:15:43Z\"}") +
            std::string(1, '\0'),
        "{\"pid\": 1, \"acquired_at\": \"2026-11-27T05:15:43Z\", \"session_id\": \"a\nb\"}",
    };
    for (const auto& doc : docs) {
        EXPECT_TRUE(invalid_naming(parse_lock(doc), "not valid JSON")) << doc;
    }
}

TEST(ParseLock, AnythingButAnObjectIsInvalid) {
    for (const std::string doc : {"null", "[]", "[{\"pid\": 1}]", "42", "\"pid\"", "true"}) {
        EXPECT_TRUE(invalid_naming(parse_lock(doc), "not a JSON object")) << doc;
    }
}

TEST(ParseLock, MissingPidOrTimeIsInvalidBecauseItCannotBeJudged) {
    EXPECT_TRUE(
        invalid_naming(parse_lock(R"({"acquired_at": "2026-11-27T05:15:43Z"})"), "\"pid\""));
    EXPECT_TRUE(invalid_naming(
        parse_lock(R"({"pid": null, "acquired_at": "2026-11-27T05:15:43Z"})"), "\"pid\""));
    EXPECT_TRUE(invalid_naming(parse_lock(R"({"pid": 1})"), "\"acquired_at\" is missing"));
    EXPECT_TRUE(invalid_naming(parse_lock(R"({"pid": 1, "acquired_at": null})"),
                               "\"acquired_at\" is missing"));
    EXPECT_TRUE(invalid_naming(parse_lock("{}"), "\"pid\" is missing"));
}

TEST(ParseLock, WrongTypesAreInvalidAndNamed) {
    const std::string t = R"("acquired_at": "2026-11-27T05:15:43Z")";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"pid": "4242", )" + t + "}", "field \"pid\" is not an integer"},
        {R"({"pid": 42.0, )" + t + "}", "field \"pid\" is not an integer"},
        {R"({"pid": 4.2e1, )" + t + "}", "field \"pid\" is not an integer"},
        {R"({"pid": true, )" + t + "}", "field \"pid\" is not an integer"},
        {R"({"pid": [1], )" + t + "}", "field \"pid\" is not an integer"},
        {R"({"pid": 9223372036854775808, )" + t + "}", "field \"pid\" is out of range"},
        {R"({"pid": 99999999999999999999, )" + t + "}", "field \"pid\" is not an integer"},
        {R"({"pid": 1, "acquired_at": 1795756543})", "field \"acquired_at\" is not a string"},
        {R"({"pid": 1, "acquired_at": "yesterday"})", "field \"acquired_at\" is not an RFC 3339"},
        {R"({"pid": 1, "acquired_at": "2026-11-31T05:15:43Z"})", "day out of range"},
        {R"({"pid": 1, )" + t + R"(, "session_id": 3})", "field \"session_id\" is not a string"},
        {R"({"pid": 1, )" + t + R"(, "hostname": false})", "field \"hostname\" is not a string"},
        {R"({"pid": 1, )" + t + R"(, "hostname": {}})", "field \"hostname\" is not a string"},
        {R"({"pid": 1, )" + t + R"(, "pid_start_ticks": -5})",
         "field \"pid_start_ticks\" is not a non-negative integer"},
        {R"({"pid": 1, )" + t + R"(, "pid_start_ticks": "5"})",
         "field \"pid_start_ticks\" is not a non-negative integer"},
        {R"({"pid": 1, )" + t + R"(, "pid_start_ticks": 1.5})",
         "field \"pid_start_ticks\" is not a non-negative integer"},
        {R"({"pid": 1, )" + t + R"(, "boot_id": 7})", "field \"boot_id\" is not a string"},
        {R"({"pid": 1, )" + t + R"(, "tmux_socket": 7})", "field \"tmux_socket\" is not a string"},
        {R"({"pid": 1, )" + t + R"(, "tmux_server_pid": 0})",
         "field \"tmux_server_pid\" is not a positive integer"},
        {R"({"pid": 1, )" + t + R"(, "tmux_server_pid": "12"})",
         "field \"tmux_server_pid\" is not a positive integer"},
        {R"({"pid": 1, )" + t + R"(, "tmux_server_pid": 18446744073709551615})",
         "field \"tmux_server_pid\" is not a positive integer"},
    };
    for (const auto& [doc, needle] : cases) {
        EXPECT_TRUE(invalid_naming(parse_lock(doc), needle)) << doc;
    }
}

TEST(ParseLock, GoZeroTimeIsInvalidNotClamped) {
    // A zero time.Time marshals as year 1, which int64 nanoseconds cannot hold. Clamping would
    // date the lock before any process start and make its owner look like a reused PID.
    const auto r = parse_lock(test::go_lock_json(4242, "0001-01-01T00:00:00Z"));
    EXPECT_TRUE(invalid_naming(r, "outside the supported range"));
    EXPECT_NE(r.error().message.find("0001-01-01T00:00:00Z"), std::string::npos);
}

TEST(ParseLock, NeverThrowsOnArbitraryBytes) {
    std::mt19937 rng(7);
    const std::string seed =
        serialize_lock(LockInfo{42, base_plus(5), "s\xC3\xA9", "h", std::uint64_t{7},
                                std::string("b"), std::string("/tmp/tmux-0/t"), std::int64_t{9}});
    for (int i = 0; i < 20000; ++i) {
        std::string doc = seed;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            const std::size_t pos = rng() % doc.size();
            switch (rng() % 3) {
            case 0:
                doc[pos] = static_cast<char>(rng());
                break;
            case 1:
                doc.erase(pos, 1);
                break;
            default:
                doc.insert(pos, 1, static_cast<char>(rng()));
            }
        }
        const auto r = parse_lock(doc); // must not throw or crash
        if (!r) {
            EXPECT_EQ(r.error().kind, ErrorKind::invalid_lock);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// serialize_lock

TEST(SerializeLock, MatchesGoMarshalIndentByteForByte) {
    // Expected texts are what Go 1.19's json.MarshalIndent(info, "", "  ") printed for the same
    // LockInfo with a UTC time (tests/interop checks the same against a live Go program).
    LockInfo full{4242,         base_plus(123'456'789), "sess-1",     "host-a",
                  std::nullopt, std::nullopt,           std::nullopt, std::nullopt};
    EXPECT_EQ(serialize_lock(full), "{\n"
                                    "  \"pid\": 4242,\n"
                                    "  \"acquired_at\": \"2026-11-27T05:15:43.123456789Z\",\n"
                                    "  \"session_id\": \"sess-1\",\n"
                                    "  \"hostname\": \"host-a\"\n"
                                    "}");
    LockInfo bare{
        1, base_plus(500'000'000), "", "", std::nullopt, std::nullopt, std::nullopt, std::nullopt};
    EXPECT_EQ(serialize_lock(bare), "{\n"
                                    "  \"pid\": 1,\n"
                                    "  \"acquired_at\": \"2026-11-27T05:15:43.5Z\"\n"
                                    "}");
    LockInfo whole{77,           base_plus(0), "$3",         "",
                   std::nullopt, std::nullopt, std::nullopt, std::nullopt};
    EXPECT_EQ(serialize_lock(whole), "{\n"
                                     "  \"pid\": 77,\n"
                                     "  \"acquired_at\": \"2026-11-27T05:15:43Z\",\n"
                                     "  \"session_id\": \"$3\"\n"
                                     "}");
    LockInfo early{
        9, at_ns(-999'999'999), "", "h", std::nullopt, std::nullopt, std::nullopt, std::nullopt};
    EXPECT_EQ(serialize_lock(early), "{\n"
                                     "  \"pid\": 9,\n"
                                     "  \"acquired_at\": \"1969-12-31T23:59:59.000000001Z\",\n"
                                     "  \"hostname\": \"h\"\n"
                                     "}");
}

TEST(SerializeLock, EscapesStringsAsGoDoes) {
    // HTML characters, control characters, DEL (kept), U+2028/2029, and invalid UTF-8 (each bad
    // byte becomes \ufffd): as printed by Go for this very session and hostname.
    LockInfo info{5,
                  *parse_rfc3339("2026-01-02T03:04:05.06Z"),
                  "a<b>&\"\\\n\r\t\x01\x1f\x7f \xC3\xA9 \xE2\x80\xA8\xE2\x80\xA9 \xFF \xED\xA0\x80 "
                  "\xE0\x80\x80 x",
                  "h\xE2\x84\xAA",
                  std::nullopt,
                  std::nullopt,
                  std::nullopt,
                  std::nullopt};
    EXPECT_EQ(serialize_lock(info),
              "{\n"
              "  \"pid\": 5,\n"
              "  \"acquired_at\": \"2026-01-02T03:04:05.06Z\",\n"
              "  \"session_id\": "
              "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\r\\t\\u0001\\u001f\x7f \xC3\xA9 "
              "\\u2028\\u2029 \\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd x\",\n"
              "  \"hostname\": \"h\xE2\x84\xAA\"\n"
              "}");
}

TEST(SerializeLock, AppendsOurExtrasAfterGoFields) {
    LockInfo info{4242,         base_plus(1),          "s",
                  "h",          std::uint64_t{123456}, std::string("boot-1"),
                  std::nullopt, std::nullopt};
    EXPECT_EQ(serialize_lock(info), "{\n"
                                    "  \"pid\": 4242,\n"
                                    "  \"acquired_at\": \"2026-11-27T05:15:43.000000001Z\",\n"
                                    "  \"session_id\": \"s\",\n"
                                    "  \"hostname\": \"h\",\n"
                                    "  \"pid_start_ticks\": 123456,\n"
                                    "  \"boot_id\": \"boot-1\"\n"
                                    "}");
    info.session_id.clear();
    info.hostname.clear();
    info.boot_id.reset();
    EXPECT_EQ(serialize_lock(info), "{\n"
                                    "  \"pid\": 4242,\n"
                                    "  \"acquired_at\": \"2026-11-27T05:15:43.000000001Z\",\n"
                                    "  \"pid_start_ticks\": 123456\n"
                                    "}");
    info.tmux_socket = "/tmp/tmux-0/town";
    info.tmux_server_pid = 4000;
    EXPECT_EQ(serialize_lock(info), "{\n"
                                    "  \"pid\": 4242,\n"
                                    "  \"acquired_at\": \"2026-11-27T05:15:43.000000001Z\",\n"
                                    "  \"pid_start_ticks\": 123456,\n"
                                    "  \"tmux_socket\": \"/tmp/tmux-0/town\",\n"
                                    "  \"tmux_server_pid\": 4000\n"
                                    "}");
}

TEST(SerializeLock, RoundTripsThroughParseLock) {
    std::mt19937_64 rng(5);
    std::uniform_int_distribution<std::int64_t> any(std::numeric_limits<std::int64_t>::min(),
                                                    std::numeric_limits<std::int64_t>::max());
    const std::vector<std::string> strings = {"",
                                              "gt-beads-crew-dave",
                                              "$12",
                                              "%7",
                                              "a\"b",
                                              "<tag>&amp;",
                                              "\x01\x02\n\t\x7f",
                                              "\xC3\xA9\xE2\x80\xA8\xF0\x9F\x98\x80"};
    for (int i = 0; i < 2000; ++i) {
        LockInfo info;
        info.pid = any(rng);
        info.acquired_at = at_ns(any(rng));
        info.session_id = strings[rng() % strings.size()];
        info.hostname = strings[rng() % strings.size()];
        if (rng() % 2 != 0) {
            info.pid_start_ticks = static_cast<std::uint64_t>(any(rng));
        }
        if (rng() % 2 != 0) {
            info.boot_id = strings[rng() % strings.size()];
        }
        if (rng() % 2 != 0) {
            info.tmux_socket = strings[rng() % strings.size()];
            info.tmux_server_pid = 1 + static_cast<std::int64_t>(rng() % 4'000'000);
        }
        const std::string text = serialize_lock(info);
        const auto back = parse_lock(text);
        ASSERT_TRUE(back) << text << "\n" << back.error().message;
        ASSERT_EQ(*back, info) << text;
        ASSERT_NE(text.back(), '\n');
    }
}

// ---------------------------------------------------------------------------------------------
// lock_path_for

TEST(LockPathFor, JoinsTheRuntimeDirAndLockName) {
    EXPECT_EQ(lock_path_for("/w/worker-1"), "/w/worker-1/.runtime/agent.lock");
    EXPECT_EQ(lock_path_for("/w/worker-1/"), "/w/worker-1/.runtime/agent.lock");
    EXPECT_EQ(lock_path_for("/w/worker-1//"), "/w/worker-1/.runtime/agent.lock");
    EXPECT_EQ(lock_path_for("worker"), "worker/.runtime/agent.lock");
    EXPECT_EQ(lock_path_for("/"), "/.runtime/agent.lock");
    EXPECT_EQ(lock_path_for(""), ".runtime/agent.lock");
}

// ---------------------------------------------------------------------------------------------
// read_lock_at / write_lock_at on real files

// Runs `body` in a forked child and returns its exit status, or -1 when it had to be killed after
// `timeout` (it blocked).
int run_in_child(const std::function<int()>& body, std::chrono::seconds timeout) {
    const pid_t pid = ::fork();
    if (pid < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return -2;
    }
    if (pid == 0) {
        ::_exit(body());
    }
    int status = 0;
    bool reaped = false;
    test::wait_until(
        [&] {
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            reaped = r == pid;
            return reaped;
        },
        timeout);
    if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class LockFileIo : public ::testing::Test {
protected:
    void SetUp() override {
        test::make_dirs(runtime());
        m_fd = Fd(::open(runtime().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(m_fd.valid()) << std::strerror(errno);
    }
    std::string runtime() const { return m_dir.sub("worker/.runtime"); }
    std::string lock() const { return runtime() + "/agent.lock"; }
    LockRead read() const { return read_lock_at(m_fd.get(), lock()); }
    // Names in the runtime dir other than agent.lock (temporary files left behind).
    std::vector<std::string> leftovers() const {
        std::vector<std::string> out;
        DIR* d = ::opendir(runtime().c_str());
        if (d == nullptr) {
            ADD_FAILURE() << "opendir " << runtime() << ": " << std::strerror(errno);
            return out;
        }
        while (const dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name != "." && name != ".." && name != "agent.lock") {
                out.push_back(name);
            }
        }
        ::closedir(d);
        return out;
    }
    static LockInfo sample(std::int64_t pid = 4242, const std::string& session = "sess-1") {
        return LockInfo{pid,
                        base_plus(123'456'789),
                        session,
                        "host-a",
                        std::uint64_t{99},
                        std::string("boot-1"),
                        std::nullopt,
                        std::nullopt};
    }
    void expect_invalid(const LockRead& r, const std::string& needle) const {
        EXPECT_EQ(r.state, LockRead::State::invalid) << r.message;
        EXPECT_FALSE(r.info.has_value());
        EXPECT_NE(r.message.find(lock()), std::string::npos) << r.message;
        EXPECT_NE(r.message.find(needle), std::string::npos) << r.message;
    }

    TempDir m_dir;
    Fd m_fd;
};

TEST_F(LockFileIo, AbsentWhenThereIsNoLock) {
    const LockRead r = read();
    EXPECT_EQ(r.state, LockRead::State::absent);
    EXPECT_FALSE(r.info.has_value());
}

TEST_F(LockFileIo, ReadsARegularFile) {
    const std::string text = test::go_lock_json(4242, "2026-11-27T10:45:43.5+05:30", "s", "h");
    test::write_file(lock(), text);
    const LockRead r = read();
    ASSERT_EQ(r.state, LockRead::State::ok) << r.message;
    EXPECT_EQ(r.bytes, text);
    ASSERT_TRUE(r.info.has_value());
    EXPECT_EQ(r.info->pid, 4242);
    EXPECT_EQ(r.info->acquired_at, base_plus(500'000'000));
}

TEST_F(LockFileIo, UnparseableFileIsInvalidAndKeepsItsBytes) {
    // Reported with its content, not dropped: it may be mid-write by a non-atomic writer.
    test::write_file(lock(), "{\"pid\": 42, \"acq");
    const LockRead r = read();
    expect_invalid(r, "not valid JSON");
    EXPECT_EQ(r.bytes, "{\"pid\": 42, \"acq");
    test::write_file(lock(), "");
    expect_invalid(read(), "not valid JSON");
    test::write_file(lock(), R"({"pid": "42", "acquired_at": "2026-11-27T05:15:43Z"})");
    expect_invalid(read(), "field \"pid\" is not an integer");
}

TEST_F(LockFileIo, SymlinkToAValidLockIsInvalidAndNotFollowed) {
    test::write_file(m_dir.sub("elsewhere.lock"), serialize_lock(sample()));
    ASSERT_EQ(::symlink(m_dir.sub("elsewhere.lock").c_str(), lock().c_str()), 0);
    const LockRead r = read();
    expect_invalid(r, "is a symlink");
    EXPECT_TRUE(r.bytes.empty());
}

TEST_F(LockFileIo, DanglingSymlinkIsInvalidNotAbsent) {
    ASSERT_EQ(::symlink("/nonexistent/agent.lock", lock().c_str()), 0);
    expect_invalid(read(), "is a symlink");
}

TEST_F(LockFileIo, FifoIsInvalidAndNeverBlocks) {
    ASSERT_EQ(::mkfifo(lock().c_str(), 0644), 0) << std::strerror(errno);
    // In a child, so that a blocking open or read fails the test instead of hanging it.
    const int status = run_in_child(
        [&] {
            const LockRead r = read();
            return r.state == LockRead::State::invalid &&
                           r.message.find("FIFO") != std::string::npos
                       ? 0
                       : 1;
        },
        std::chrono::seconds(10));
    ASSERT_NE(status, -1) << "read_lock_at blocked on a FIFO";
    EXPECT_EQ(status, 0);
    expect_invalid(read(), "is a FIFO");
}

TEST_F(LockFileIo, UnixSocketIsInvalid) {
    Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(sock.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(lock().size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, lock().c_str(), lock().size() + 1);
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    expect_invalid(read(), "is a socket");
}

TEST_F(LockFileIo, DirectoryIsInvalid) {
    test::make_dirs(lock());
    expect_invalid(read(), "is a directory");
}

TEST_F(LockFileIo, DeviceNodeIsInvalidAndNotOpened) {
    if (::mknod(lock().c_str(), S_IFCHR | 0644, makedev(1, 3)) != 0) {
        GTEST_SKIP() << "mknod needs CAP_MKNOD: " << std::strerror(errno);
    }
    expect_invalid(read(), "is a character device");
}

TEST_F(LockFileIo, OneMebibyteIsTooLargeAndNotRead) {
    std::string big = serialize_lock(sample());
    big.insert(1, std::string(1024 * 1024 - big.size(), ' '));
    ASSERT_EQ(big.size(), 1024U * 1024U);
    test::write_file(lock(), big);
    const LockRead r = read();
    expect_invalid(r, "too large (1048576 bytes");
    EXPECT_TRUE(r.bytes.empty());
}

TEST_F(LockFileIo, SparseGibibyteIsTooLargeAndNotRead) {
    {
        Fd fd(::open(lock().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        ASSERT_TRUE(fd.valid());
        ASSERT_EQ(::ftruncate(fd.get(), off_t{1} << 30), 0) << std::strerror(errno);
    }
    const LockRead r = read();
    expect_invalid(r, "too large (1073741824 bytes");
    EXPECT_TRUE(r.bytes.empty());
}

TEST_F(LockFileIo, TheSizeLimitIsInclusive) {
    std::string text = serialize_lock(sample());
    text.append(k_max_lock_bytes - text.size(), '\n');
    ASSERT_EQ(text.size(), k_max_lock_bytes);
    test::write_file(lock(), text);
    const LockRead at_limit = read();
    ASSERT_EQ(at_limit.state, LockRead::State::ok) << at_limit.message;
    EXPECT_EQ(at_limit.bytes.size(), k_max_lock_bytes);
    text += '\n';
    test::write_file(lock(), text);
    expect_invalid(read(), "too large (65537 bytes");
}

TEST_F(LockFileIo, ANonDirectoryFdIsAnIoError) {
    test::write_file(m_dir.sub("plain"), "x");
    Fd plain(::open(m_dir.sub("plain").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(plain.valid());
    const LockRead r = read_lock_at(plain.get(), "/some/where/agent.lock");
    EXPECT_EQ(r.state, LockRead::State::io_error);
    EXPECT_EQ(r.message, "stat /some/where/agent.lock: Not a directory");
}

TEST_F(LockFileIo, WriteProducesTheSerialisedLockWithMode0644) {
    const mode_t old_umask = ::umask(077);
    const Status s = write_lock_at(m_fd.get(), lock(), sample());
    ::umask(old_umask);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(test::read_file(lock()), serialize_lock(sample()));
    struct stat st {};
    ASSERT_EQ(::stat(lock().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644U);
    const LockRead r = read();
    ASSERT_EQ(r.state, LockRead::State::ok) << r.message;
    EXPECT_EQ(r.info, sample());
    EXPECT_TRUE(leftovers().empty());
}

TEST_F(LockFileIo, WriteReplacesAnExistingLock) {
    test::write_file(lock(), test::go_lock_json(1, "2026-11-27T05:15:43Z", "old"));
    ASSERT_TRUE(write_lock_at(m_fd.get(), lock(), sample(7, "new")));
    const LockRead r = read();
    ASSERT_EQ(r.state, LockRead::State::ok) << r.message;
    EXPECT_EQ(r.info->pid, 7);
    EXPECT_EQ(r.info->session_id, "new");
    EXPECT_TRUE(leftovers().empty());
}

TEST_F(LockFileIo, WriteReplacesASymlinkWithoutTouchingItsTarget) {
    const std::string target = m_dir.sub("target");
    test::write_file(target, "precious");
    ASSERT_EQ(::symlink(target.c_str(), lock().c_str()), 0);
    ASSERT_TRUE(write_lock_at(m_fd.get(), lock(), sample()));
    EXPECT_EQ(test::read_file(target), "precious");
    EXPECT_EQ(read().state, LockRead::State::ok);
}

TEST_F(LockFileIo, FailedRenameLeavesNoTemporaryFile) {
    test::make_dirs(lock() + "/occupied");
    const Status s = write_lock_at(m_fd.get(), lock(), sample());
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::io);
    EXPECT_EQ(s.error().message.rfind("rename " + lock() + ": ", 0), 0U) << s.error().message;
    EXPECT_TRUE(s.error().code);
    EXPECT_TRUE(leftovers().empty());
}

TEST_F(LockFileIo, FailedWriteLeavesNoTemporaryFileAndTheOldLock) {
    // RLIMIT_FSIZE makes write() fail (EFBIG) the way a full disk would, in a child so the limit
    // stays there.
    const std::string old = test::go_lock_json(1, "2026-11-27T05:15:43Z", "old");
    test::write_file(lock(), old);
    const int status = run_in_child(
        [&] {
            std::signal(SIGXFSZ, SIG_IGN);
            const rlimit lim{16, 16};
            if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) {
                return 2;
            }
            const Status s = write_lock_at(m_fd.get(), lock(), sample());
            if (s || s.error().code != std::errc::file_too_large ||
                s.error().message.find("/.agent.lock.tmp.") == std::string::npos) {
                return 1;
            }
            return 0;
        },
        std::chrono::seconds(30));
    EXPECT_EQ(status, 0);
    EXPECT_TRUE(leftovers().empty()) << leftovers().front();
    EXPECT_EQ(test::read_file(lock()), old);
}

TEST_F(LockFileIo, FullDiskLeavesNoTemporaryFileAndTheOldLock) {
    // A real ENOSPC: a tiny tmpfs mounted in a private mount namespace of a child process.
    const std::string mnt = m_dir.sub("small");
    test::make_dirs(mnt);
    const std::string old = test::go_lock_json(1, "2026-11-27T05:15:43Z", "old");
    const int status = run_in_child(
        [&]() -> int {
            if (::unshare(CLONE_NEWNS) != 0 ||
                ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
                return 77;
            }
            test::write_file(mnt + "/agent.lock", old);
            {
                // Fill the file system.
                Fd filler(::open((mnt + "/filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
                const std::string block(4096, 'x');
                while (::write(filler.get(), block.data(), block.size()) > 0) {
                }
                if (errno != ENOSPC) {
                    return 3;
                }
            }
            Fd dir(::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            const Status s =
                write_lock_at(dir.get(), mnt + "/agent.lock", sample(4242, std::string(8192, 's')));
            if (s || s.error().code != std::errc::no_space_on_device) {
                return 1;
            }
            int names = 0;
            DIR* d = ::opendir(mnt.c_str());
            while (const dirent* e = ::readdir(d)) {
                const std::string name = e->d_name;
                if (name != "." && name != ".." && name != "agent.lock" && name != "filler") {
                    ++names;
                }
            }
            ::closedir(d);
            if (names != 0) {
                return 4;
            }
            return test::read_file(mnt + "/agent.lock") == old ? 0 : 5;
        },
        std::chrono::seconds(30));
    if (status == 77) {
        GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN); "
                        "FailedWriteLeavesNoTemporaryFileAndTheOldLock covers the same path";
    }
    EXPECT_EQ(status, 0) << "1: no ENOSPC error, 3: could not fill, 4: temp file left behind, "
                            "5: old lock changed";
}

TEST_F(LockFileIo, ConcurrentReaderNeverSeesAPartialLock) {
    // A write in place (Go's os.WriteFile) truncates and writes in place, so a reader can see an
    // empty or half-written file. Locks of very different sizes make a torn read visible.
    const LockInfo small = sample(1, "s");
    const LockInfo large = sample(2, std::string(20000, 'L'));
    ASSERT_TRUE(write_lock_at(m_fd.get(), lock(), small));
    std::atomic<bool> done{false};
    std::atomic<bool> failed{false};
    std::atomic<long> reads{0};
    std::string failure; // written by the reader before `failed`, read after join
    std::thread reader([&] {
        Fd fd(::open(runtime().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        while (!done.load()) {
            const LockRead r = read_lock_at(fd.get(), lock());
            const long n = reads.fetch_add(1) + 1;
            if (r.state != LockRead::State::ok || !(r.info == small || r.info == large)) {
                failure = "state " + std::to_string(static_cast<int>(r.state)) + ": " + r.message +
                          " after " + std::to_string(n) + " reads";
                failed = true;
                return;
            }
        }
    });
    int written = 0;
    for (; written < 500 && !failed.load(); ++written) {
        const Status s = write_lock_at(m_fd.get(), lock(), written % 2 == 0 ? large : small);
        if (!s) {
            ADD_FAILURE() << s.error().message;
            break;
        }
    }
    // Let the reader see the final state at least once more.
    const long before = reads.load();
    test::wait_until([&] { return reads.load() > before + 1 || failed.load(); });
    done = true;
    reader.join();
    EXPECT_EQ(failure, "");
    EXPECT_EQ(written, 500);
    EXPECT_GT(reads.load(), 1);
    EXPECT_TRUE(leftovers().empty());
}

TEST_F(LockFileIo, TemporaryNamesDoNotCollideAcrossWriters) {
    // Several threads writing at once: each rename installs a complete lock, none fails.
    std::vector<std::thread> writers;
    std::atomic<int> failures{0};
    for (int w = 0; w < 4; ++w) {
        writers.emplace_back([&, w] {
            Fd fd(::open(runtime().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            for (int i = 0; i < 50; ++i) {
                if (!write_lock_at(fd.get(), lock(), sample(w + 1))) {
                    failures.fetch_add(1);
                }
            }
        });
    }
    for (auto& t : writers) {
        t.join();
    }
    EXPECT_EQ(failures.load(), 0);
    const LockRead r = read();
    ASSERT_EQ(r.state, LockRead::State::ok) << r.message;
    EXPECT_TRUE(r.info->pid >= 1 && r.info->pid <= 4);
    EXPECT_TRUE(leftovers().empty());
}

} // namespace
} // namespace agentlock
