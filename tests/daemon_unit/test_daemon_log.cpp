// Unit tests of agentlockd's log formats: logfmt text, JSON lines, journal fields.

#include "event_log.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fcntl.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock::daemon {
namespace {

namespace json = boost::json;
using Clock = std::chrono::system_clock;

Clock::time_point fixed_time() {
    // 2026-01-02T03:04:05.678Z
    return Clock::time_point(std::chrono::milliseconds(1767323045678LL));
}

TEST(LogTimestamp, IsUtcRfc3339WithMilliseconds) {
    EXPECT_EQ(format_log_timestamp(fixed_time()), "2026-01-02T03:04:05.678Z");
    EXPECT_EQ(format_log_timestamp(Clock::time_point{}), "1970-01-01T00:00:00.000Z");
}

TEST(LogLevels, ParseAndName) {
    for (const char* name : {"trace", "debug", "info", "warn", "error"}) {
        auto level = parse_log_level(name);
        ASSERT_TRUE(level) << name;
        EXPECT_EQ(to_string(*level), name);
    }
    EXPECT_FALSE(parse_log_level("warning"));
    EXPECT_FALSE(parse_log_level("INFO"));
    for (const char* name : {"auto", "text", "json", "journal"}) {
        auto format = parse_log_format(name);
        ASSERT_TRUE(format) << name;
        EXPECT_EQ(to_string(*format), name);
    }
    EXPECT_FALSE(parse_log_format("logfmt"));
    EXPECT_EQ(syslog_priority(LogLevel::error), 3);
    EXPECT_EQ(syslog_priority(LogLevel::warn), 4);
    EXPECT_EQ(syslog_priority(LogLevel::info), 6);
    EXPECT_EQ(syslog_priority(LogLevel::debug), 7);
}

// ---------------------------------------------------------------------------------------------
// logfmt

TEST(Logfmt, PlainValuesStayBare) {
    EXPECT_EQ(
        format_logfmt("lock.removed", {{"pid", "42"}, {"path", "/srv/a/.runtime/agent.lock"}}),
        "lock.removed pid=42 path=/srv/a/.runtime/agent.lock");
    EXPECT_EQ(format_logfmt("daemon.stopping", {}), "daemon.stopping");
    EXPECT_EQ(format_logfmt("e", {{"name", "caf\xc3\xa9"}}), "e name=caf\xc3\xa9")
        << "valid UTF-8 needs no quotes";
}

TEST(Logfmt, QuotesWhereNeeded) {
    EXPECT_EQ(format_logfmt("e", {{"k", ""}}), "e k=\"\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "two words"}}), "e k=\"two words\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "a=b"}}), "e k=\"a=b\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "say \"hi\""}}), "e k=\"say \\\"hi\\\"\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "back\\slash"}}), "e k=\"back\\\\slash\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "line1\nline2"}}), "e k=\"line1\\nline2\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "tab\there"}}), "e k=\"tab\\there\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "cr\r"}}), "e k=\"cr\\r\"");
    EXPECT_EQ(format_logfmt("e", {{"k", std::string("nul\0x", 5)}}), "e k=\"nul\\x00x\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "bell\x07"}}), "e k=\"bell\\x07\"");
    EXPECT_EQ(format_logfmt("e", {{"k", "bad\xff"}}), "e k=\"bad\\xff\"");
}

TEST(Logfmt, EveryEventIsOneLine) {
    const std::string line = format_text_line(
        fixed_time(), LogLevel::warn, "lock.invalid",
        {{"lock_path", "/srv/new\nline/.runtime/agent.lock"}, {"content", "{\n  \"pid\": 1\n}"}});
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(
        line.rfind("2026-01-02T03:04:05.678Z warn lock.invalid lock_path=\"/srv/new\\nline", 0), 0u)
        << line;
}

// ---------------------------------------------------------------------------------------------
// JSON lines

json::object parse_line(const std::string& line) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    EXPECT_FALSE(ec) << ec.message() << ": " << line;
    EXPECT_TRUE(v.is_object()) << line;
    return v.is_object() ? v.as_object() : json::object{};
}

TEST(JsonLine, ParsesAndCarriesTsLevelEventAndFields) {
    const std::string line = format_json_line(fixed_time(), LogLevel::info, "lock.removed",
                                              {{"lock_path", "/srv/w/.runtime/agent.lock"},
                                               {"reason", "PID 7 is dead"},
                                               {"content", "{\n  \"pid\": 7\n}"}});
    EXPECT_EQ(line.find('\n'), std::string::npos);
    json::object o = parse_line(line);
    EXPECT_EQ(o.at("ts"), "2026-01-02T03:04:05.678Z");
    EXPECT_EQ(o.at("level"), "info");
    EXPECT_EQ(o.at("event"), "lock.removed");
    EXPECT_EQ(o.at("lock_path"), "/srv/w/.runtime/agent.lock");
    EXPECT_EQ(o.at("content"), "{\n  \"pid\": 7\n}");
    // Fields keep their order after ts, level, event.
    auto it = o.begin();
    EXPECT_EQ(it->key(), "ts");
    ++it;
    EXPECT_EQ(it->key(), "level");
    ++it;
    EXPECT_EQ(it->key(), "event");
    ++it;
    EXPECT_EQ(it->key(), "lock_path");
}

TEST(JsonLine, PidAndCountersAreNumbers) {
    json::object o = parse_line(format_json_line(fixed_time(), LogLevel::info, "pass.completed",
                                                 {{"pid", "1234"},
                                                  {"locks", "340"},
                                                  {"elapsed_ms", "12"},
                                                  {"session_id", "42"},
                                                  {"interval", "30s"}}));
    EXPECT_TRUE(o.at("pid").is_int64());
    EXPECT_EQ(o.at("pid").as_int64(), 1234);
    EXPECT_EQ(o.at("locks").as_int64(), 340);
    EXPECT_EQ(o.at("elapsed_ms").as_int64(), 12);
    EXPECT_TRUE(o.at("session_id").is_string()) << "a session id that looks numeric is text";
    EXPECT_TRUE(o.at("interval").is_string());
    json::object bad =
        parse_line(format_json_line(fixed_time(), LogLevel::info, "e", {{"pid", "not a number"}}));
    EXPECT_EQ(bad.at("pid"), "not a number");
}

TEST(JsonLine, InvalidUtf8AndControlCharactersStillParse) {
    const std::string nasty = "/srv/\xff\xfe/na\"me\\with\ttab\nnl\x01";
    const std::string line =
        format_json_line(fixed_time(), LogLevel::warn, "lock.invalid", {{"lock_path", nasty}});
    json::object o = parse_line(line);
    EXPECT_EQ(o.at("lock_path"), "/srv/\\xff\\xfe/na\"me\\with\ttab\nnl\x01");
}

// ---------------------------------------------------------------------------------------------
// Journal

TEST(Journal, FieldNamesAreUppercaseIdentifiers) {
    EXPECT_EQ(journal_field_name("worker"), "AGENTLOCK_WORKER");
    EXPECT_EQ(journal_field_name("lock_path"), "AGENTLOCK_LOCK_PATH");
    EXPECT_EQ(journal_field_name("pid.state-x"), "AGENTLOCK_PID_STATE_X");
    EXPECT_EQ(journal_field_name("Tmux9"), "AGENTLOCK_TMUX9");
    EXPECT_EQ(journal_field_name("caf\xc3\xa9"), "AGENTLOCK_CAF__");
    const std::string longest = journal_field_name(std::string(100, 'a'));
    EXPECT_EQ(longest.size(), 64u);
}

TEST(Journal, EntryHasMessagePriorityIdentifierEventAndFields) {
    auto entry = journal_entry(
        LogLevel::warn, "lock.orphaned",
        {{"lock_path", "/srv/w/.runtime/agent.lock"}, {"pid", "9"}, {"reason", "bad \xff byte"}});
    ASSERT_EQ(entry.size(), 7u);
    EXPECT_EQ(entry[0], "MESSAGE=lock.orphaned lock_path=/srv/w/.runtime/agent.lock pid=9 "
                        "reason=\"bad \\xff byte\"");
    EXPECT_EQ(entry[1], "PRIORITY=4");
    EXPECT_EQ(entry[2], "SYSLOG_IDENTIFIER=agentlockd");
    EXPECT_EQ(entry[3], "AGENTLOCK_EVENT=lock.orphaned");
    EXPECT_EQ(entry[4], "AGENTLOCK_LOCK_PATH=/srv/w/.runtime/agent.lock");
    EXPECT_EQ(entry[5], "AGENTLOCK_PID=9");
    EXPECT_EQ(entry[6], "AGENTLOCK_REASON=bad \\xff byte");
}

TEST(Journal, StreamMatchesOnlyTheFdsDeviceAndInode) {
    char path[] = "/tmp/agentlock-journal-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    const std::string good = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    const std::string other_ino = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
    EXPECT_TRUE(journal_stream_matches(good.c_str(), fd));
    EXPECT_FALSE(journal_stream_matches(other_ino.c_str(), fd));
    EXPECT_FALSE(journal_stream_matches((good + "x").c_str(), fd));
    EXPECT_FALSE(journal_stream_matches("garbage", fd));
    EXPECT_FALSE(journal_stream_matches("", fd));
    EXPECT_FALSE(journal_stream_matches(nullptr, fd));
    ::close(fd);
    ::unlink(path);
}

TEST(Journal, AutoPicksJournalOnlyWhenStderrIsTheJournal) {
    struct stat st {};
    ASSERT_EQ(::fstat(2, &st), 0);
    const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    const char* saved = std::getenv("JOURNAL_STREAM");
    const std::string saved_value = saved != nullptr ? saved : "";
    ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
    EXPECT_EQ(resolve_log_format(LogFormat::automatic), LogFormat::journal);
    EXPECT_EQ(resolve_log_format(LogFormat::json), LogFormat::json) << "a forced format wins";
    ::setenv("JOURNAL_STREAM", "1:2", 1);
    EXPECT_EQ(resolve_log_format(LogFormat::automatic), LogFormat::text);
    ::unsetenv("JOURNAL_STREAM");
    EXPECT_EQ(resolve_log_format(LogFormat::automatic), LogFormat::text);
    EXPECT_EQ(resolve_log_format(LogFormat::journal), LogFormat::journal);
    if (saved != nullptr) {
        ::setenv("JOURNAL_STREAM", saved_value.c_str(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// EventLog through spdlog

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

TEST(EventLogTest, JsonFormatWritesOneParsableObjectPerEvent) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    EventLog log(LogFormat::json, LogLevel::info, sink);
    log.log(LogLevel::info, "daemon.started", {{"roots", "/srv/a"}, {"pid", "77"}});
    log.log(LogLevel::warn, "lock.orphaned", {{"lock_path", "/srv/a/w/.runtime/agent.lock"}});
    log.log(LogLevel::debug, "pass.completed", {}); // below the level: dropped
    auto lines = lines_of(out.str());
    ASSERT_EQ(lines.size(), 2u) << out.str();
    json::object first = parse_line(lines[0]);
    EXPECT_EQ(first.at("event"), "daemon.started");
    EXPECT_EQ(first.at("level"), "info");
    EXPECT_TRUE(first.at("ts").is_string());
    EXPECT_EQ(first.at("pid").as_int64(), 77);
    json::object second = parse_line(lines[1]);
    EXPECT_EQ(second.at("level"), "warn");
    EXPECT_EQ(second.at("event"), "lock.orphaned");
}

TEST(EventLogTest, TextFormatAndLevelChanges) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    EventLog log(LogFormat::text, LogLevel::warn, sink);
    EXPECT_EQ(log.format(), LogFormat::text);
    log.log(LogLevel::info, "hidden", {});
    log.log(LogLevel::error, "config.rejected", {{"error", "bad key"}});
    log.set_level(LogLevel::debug);
    log.log(LogLevel::debug, "pass.completed", {{"pass", "2"}});
    auto lines = lines_of(out.str());
    ASSERT_EQ(lines.size(), 2u) << out.str();
    EXPECT_NE(lines[0].find(" error config.rejected error=\"bad key\""), std::string::npos)
        << lines[0];
    EXPECT_NE(lines[1].find(" debug pass.completed pass=2"), std::string::npos) << lines[1];
    log.set_format(LogFormat::json);
    log.log(LogLevel::info, "config.reloaded", {});
    lines = lines_of(out.str());
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(parse_line(lines[2]).at("event"), "config.reloaded");
}

TEST(EventLogTest, JournalFormatFallsBackToStderrWithoutJournald) {
    struct stat st {};
    if (::stat("/run/systemd/journal/socket", &st) == 0) {
        GTEST_SKIP() << "journald is running here; this test needs it absent";
    }
    char path[] = "/tmp/agentlock-stderr-XXXXXX";
    const int file = ::mkstemp(path);
    ASSERT_GE(file, 0);
    const int saved_stderr = ::dup(2);
    ASSERT_GE(saved_stderr, 0);
    ASSERT_EQ(::dup2(file, 2), 2);
    {
        EventLog log(LogFormat::journal, LogLevel::info);
        EXPECT_EQ(log.format(), LogFormat::journal);
        log.log(LogLevel::warn, "lock.orphaned", {{"lock_path", "/srv/w/.runtime/agent.lock"}});
    }
    ASSERT_EQ(::dup2(saved_stderr, 2), 2);
    ::close(saved_stderr);
    char buf[4096];
    const ssize_t n = ::pread(file, buf, sizeof buf, 0);
    ::close(file);
    ::unlink(path);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)),
              "lock.orphaned lock_path=/srv/w/.runtime/agent.lock\n");
}

} // namespace
} // namespace agentlock::daemon
