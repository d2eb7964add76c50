// agentlockd's metrics file: the exact text exposition, the atomic writer, and what the daemon's
// passes and re-checks make of it.

#include "daemon_test_support.hpp"
#include "fakes.hpp"
#include "metrics.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock::daemon {
namespace {

using agentlock::test::read_file;
using agentlock::test::TempDir;
using agentlock::test::tmux_state;

MetricsSnapshot full_snapshot() {
    MetricsSnapshot s;
    s.locks = {3, 1, 2, 0, 1, 4, 0}; // live, stale, held-by-session, orphaned, foreign, ...
    s.removals = {{"pass", 5}, {"pidfd", 2}, {"tmux", 1}};
    s.duplicate_sessions = 1;
    s.duplicate_pids = 0;
    s.tmux_servers = {{"-L fleet", TmuxState::ok}};
    s.passes = 12;
    s.last_pass_duration_seconds = 0.042;
    s.last_pass_end_unix_seconds = 1764000000.5;
    s.degraded = {"inotify"};
    return s;
}

TEST(MetricsFormat, EveryFamilyWithHelpTypeAndEveryLabelValue) {
    EXPECT_EQ(
        format_metrics(full_snapshot()),
        R"(# HELP agentlock_locks Locks under the roots by verdict, as of the last pass and the re-checks since.
# TYPE agentlock_locks gauge
agentlock_locks{verdict="live"} 3
agentlock_locks{verdict="stale"} 1
agentlock_locks{verdict="held-by-session"} 2
agentlock_locks{verdict="orphaned"} 0
agentlock_locks{verdict="foreign"} 1
agentlock_locks{verdict="invalid"} 4
agentlock_locks{verdict="unknown"} 0
agentlock_locks{verdict="host-gone"} 0
# HELP agentlock_removals_total Stale locks removed since agentlockd started, by what found them.
# TYPE agentlock_removals_total counter
agentlock_removals_total{trigger="pass"} 5
agentlock_removals_total{trigger="pidfd"} 2
agentlock_removals_total{trigger="inotify"} 0
agentlock_removals_total{trigger="tmux"} 1
agentlock_removals_total{trigger="poll"} 0
# HELP agentlock_collisions Duplicate claims among the known locks: one session or one live PID in several workers.
# TYPE agentlock_collisions gauge
agentlock_collisions{kind="duplicate-session"} 1
agentlock_collisions{kind="duplicate-pid"} 0
# HELP agentlock_tmux_server_state 1 for the state of each tmux server at its last answer (ok, no-server, unknown), 0 for the others.
# TYPE agentlock_tmux_server_state gauge
agentlock_tmux_server_state{server="-L fleet",state="ok"} 1
agentlock_tmux_server_state{server="-L fleet",state="no-server"} 0
agentlock_tmux_server_state{server="-L fleet",state="unknown"} 0
# HELP agentlock_passes_total Full passes completed since start.
# TYPE agentlock_passes_total counter
agentlock_passes_total 12
# HELP agentlock_pass_duration_seconds How long the last full pass took.
# TYPE agentlock_pass_duration_seconds gauge
agentlock_pass_duration_seconds 0.042
# HELP agentlock_last_pass_timestamp_seconds When the last full pass ended, in seconds since the Unix epoch.
# TYPE agentlock_last_pass_timestamp_seconds gauge
agentlock_last_pass_timestamp_seconds 1764000000.500
# HELP agentlock_events_degraded 1 when an event source fell back to polling since start (events.degraded), else 0.
# TYPE agentlock_events_degraded gauge
agentlock_events_degraded{source="pidfd"} 0
agentlock_events_degraded{source="inotify"} 1
)");
}

TEST(MetricsFormat, BeforeTheFirstPassOnlyCountersAndDegradationsHaveSamples) {
    MetricsSnapshot s;
    s.degraded = {"pidfd"};
    const std::string text = format_metrics(s);
    EXPECT_EQ(text.find("agentlock_locks{"), std::string::npos) << text;
    EXPECT_EQ(text.find("agentlock_collisions{"), std::string::npos) << text;
    EXPECT_EQ(text.find("agentlock_tmux_server_state{"), std::string::npos) << text;
    EXPECT_EQ(text.find("\nagentlock_pass_duration_seconds "), std::string::npos) << text;
    EXPECT_EQ(text.find("\nagentlock_last_pass_timestamp_seconds "), std::string::npos) << text;
    EXPECT_NE(text.find("\nagentlock_passes_total 0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nagentlock_removals_total{trigger=\"poll\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("\nagentlock_events_degraded{source=\"pidfd\"} 1\n"), std::string::npos);
    // Every family is still declared, so that the file always parses the same way.
    EXPECT_NE(text.find("# TYPE agentlock_locks gauge\n"), std::string::npos);
    EXPECT_EQ(text.back(), '\n');
}

TEST(MetricsFormat, ATriggerNotInTheListIsStillCounted) {
    MetricsSnapshot s;
    s.removals = {{"retry", 2}};
    const std::string text = format_metrics(s);
    EXPECT_NE(text.find("agentlock_removals_total{trigger=\"poll\"} 0\n"
                        "agentlock_removals_total{trigger=\"retry\"} 2\n"),
              std::string::npos)
        << text;
}

TEST(MetricsFormat, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label_value(R"(-S /tmp/a"b\c)"), R"(-S /tmp/a\"b\\c)");
    EXPECT_EQ(escape_label_value("a\nb"), "a\\nb");
    MetricsSnapshot s;
    s.tmux_servers = {{"-S /t/\"x\"", TmuxState::unknown}};
    EXPECT_NE(format_metrics(s).find(
                  "agentlock_tmux_server_state{server=\"-S /t/\\\"x\\\"\",state=\"unknown\"} 1\n"),
              std::string::npos);
}

ino_t inode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
}

std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

TEST(MetricsWriteFile, ReplacesTheFileByRenameReadableByOthersAndLeavesNoTemporary) {
    TempDir dir;
    const std::string path = dir.sub("agentlock.prom");
    const mode_t old_mask = ::umask(077); // the unit's UMask
    ASSERT_TRUE(write_file_atomically(path, "a 1\n"));
    const ino_t first = inode_of(path);
    ASSERT_TRUE(write_file_atomically(path, "a 2\n"));
    ::umask(old_mask);
    EXPECT_EQ(read_file(path), "a 2\n");
    EXPECT_NE(inode_of(path), first) << "rewritten in place, not renamed over";
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"agentlock.prom"});
}

TEST(MetricsWriteFile, AFailureNamesThePathAndLeavesNothingBehind) {
    TempDir dir;
    const auto missing = write_file_atomically(dir.sub("gone/agentlock.prom"), "a 1\n");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find(dir.sub("gone/")), std::string::npos)
        << missing.error().message;
    // The target is a directory: rename fails, the temporary file goes.
    agentlock::test::make_dirs(dir.sub("x.prom"));
    const auto onto_dir = write_file_atomically(dir.sub("x.prom"), "a 1\n");
    ASSERT_FALSE(onto_dir);
    EXPECT_NE(onto_dir.error().message.find("rename"), std::string::npos);
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"x.prom"});
}

// The daemon's side: a monitor fed a pass and batches, as the service feeds it.
class MetricsWriterTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_sink = std::make_shared<test::KeepingSink>();
        m_log = std::make_unique<EventLog>(LogFormat::json, LogLevel::debug, m_sink);
        m_config.roots = {m_dir.sub("root")};
        m_config.metrics_file = m_dir.sub("agentlock.prom");
        MonitorSettings settings;
        settings.roots = m_config.roots;
        m_monitor = std::make_unique<Monitor>(m_clock, settings);
        m_monitor->set_events(&m_owners, &m_dirs);
        m_writer = std::make_unique<MetricsWriter>(*m_log);
    }

    LockRecord record(const std::string& name, Verdict verdict,
                      LockAction action = LockAction::kept) const {
        LockRecord r;
        r.worker = m_dir.sub("root/" + name);
        r.lock_path = r.worker + "/.runtime/agent.lock";
        r.judgement.verdict = verdict;
        r.action = action;
        return r;
    }

    void run_pass(std::vector<LockRecord> locks) {
        m_clock.advance(std::chrono::hours(1)); // the next full pass is due
        const auto work = m_monitor->next_work();
        ASSERT_TRUE(work && work->kind == MonitorWork::Kind::pass);
        PassOutcome outcome;
        PassReport& report = outcome.report.emplace();
        report.tmux.state = TmuxState::no_server;
        for (auto& r : locks) {
            report.stats.removed += r.action == LockAction::removed ? 1 : 0;
            report.locks.push_back(std::move(r));
        }
        summarize_locks(report);
        report.locks.clear();
        report.stats.elapsed_ms = 250;
        m_monitor->pass_done(&report, false);
        m_writer->pass_done(outcome, m_config, *m_monitor, m_degraded);
    }

    void run_batch(std::vector<CheckOutcome> checks, std::optional<TmuxFacts> tmux = {}) {
        BatchOutcome outcome;
        outcome.checks = std::move(checks);
        outcome.tmux = std::move(tmux);
        m_monitor->batch_done(outcome.checks, outcome.tmux, false);
        m_writer->batch_done(outcome, m_config, *m_monitor, m_degraded);
    }

    CheckOutcome check(LockRecord r, const std::string& trigger) const {
        CheckOutcome c;
        c.check.state = WorkerCheck::State::found;
        c.check.worker = r.worker;
        c.check.lock_path = r.lock_path;
        c.check.root = m_config.roots[0];
        c.check.record = std::move(r);
        c.trigger = trigger;
        return c;
    }

    std::string file() const { return read_file(m_config.metrics_file); }

    TempDir m_dir;
    Config m_config;
    agentlock::test::FakeClock m_clock;
    agentlock::test::FakeOwnerWatch m_owners;
    agentlock::test::FakeDirWatchSet m_dirs;
    std::unique_ptr<Monitor> m_monitor;
    std::set<std::string> m_degraded;
    std::shared_ptr<test::KeepingSink> m_sink;
    std::unique_ptr<EventLog> m_log;
    std::unique_ptr<MetricsWriter> m_writer;
};

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
}

TEST_F(MetricsWriterTest, AtStartThenAfterAPassThenAfterAReCheckThatRemoved) {
    m_degraded.insert("pidfd");
    m_writer->update(m_config, *m_monitor, m_degraded);
    EXPECT_TRUE(has_line(file(), "agentlock_passes_total 0")) << file();
    EXPECT_TRUE(has_line(file(), "agentlock_events_degraded{source=\"pidfd\"} 1")) << file();

    run_pass({record("a", Verdict::live), record("b", Verdict::stale, LockAction::removed),
              record("c", Verdict::held_by_session), record("d", Verdict::live)});
    std::string text = file();
    EXPECT_TRUE(has_line(text, "agentlock_passes_total 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"live\"} 2")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"stale\"} 0")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"held-by-session\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_removals_total{trigger=\"pass\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_pass_duration_seconds 0.250")) << text;
    EXPECT_TRUE(
        has_line(text, "agentlock_tmux_server_state{server=\"default\",state=\"no-server\"} 1"))
        << text;

    // The owner of a exits: its lock is judged stale and removed.
    run_batch({check(record("a", Verdict::stale, LockAction::removed), "pidfd")},
              tmux_state(TmuxState::ok));
    text = file();
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"live\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_removals_total{trigger=\"pidfd\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_removals_total{trigger=\"pass\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_tmux_server_state{server=\"default\",state=\"ok\"} 1"))
        << text;
    EXPECT_TRUE(has_line(text, "agentlock_passes_total 1")) << text;
}

TEST_F(MetricsWriterTest, ABatchThatChangesNothingDoesNotRewriteTheFile) {
    run_pass({record("a", Verdict::live)});
    const ino_t before = inode_of(m_config.metrics_file);
    run_batch({check(record("a", Verdict::live), "inotify")}, tmux_state(TmuxState::no_server));
    EXPECT_EQ(inode_of(m_config.metrics_file), before);
    run_batch({check(record("a", Verdict::orphaned), "inotify")});
    EXPECT_NE(inode_of(m_config.metrics_file), before);
    EXPECT_TRUE(has_line(file(), "agentlock_locks{verdict=\"orphaned\"} 1")) << file();
}

TEST_F(MetricsWriterTest, WithEventsOffTheLocksComeFromThePass) {
    m_monitor->set_events(nullptr, nullptr); // the monitor keeps no table then
    run_pass({record("a", Verdict::live), record("b", Verdict::invalid),
              record("c", Verdict::stale, LockAction::removed)});
    const std::string text = file();
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"live\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"invalid\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "agentlock_locks{verdict=\"stale\"} 0")) << text;
}

TEST_F(MetricsWriterTest, AFailedWriteIsLoggedOnceAndItsRecoveryOnce) {
    m_config.metrics_file = m_dir.sub("later/agentlock.prom");
    m_writer->update(m_config, *m_monitor, m_degraded);
    run_pass({record("a", Verdict::live)});
    EXPECT_EQ(m_sink->count("metrics.failed"), 1u);
    agentlock::test::make_dirs(m_dir.sub("later"));
    run_pass({record("a", Verdict::live)});
    EXPECT_EQ(m_sink->count("metrics.recovered"), 1u);
    EXPECT_TRUE(has_line(file(), "agentlock_passes_total 2")) << file();
}

TEST_F(MetricsWriterTest, NoMetricsFileWritesNothing) {
    m_config.metrics_file.clear();
    run_pass({record("a", Verdict::live)});
    EXPECT_EQ(entries(m_dir.path()), std::vector<std::string>{});
}

} // namespace
} // namespace agentlock::daemon
