// Unit tests of findings (lib/findings) and of how agentlockd logs them: a finding is logged when
// it appears, when it changes, and when it goes away, never on every pass.

#include "pass_log.hpp"

#include "daemon_test_support.hpp"

#include <agentlock/findings.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <sstream>

namespace agentlock {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using agentlock::daemon::test::finding;

LockRecord record(const std::string& worker, Verdict verdict, LockAction action = LockAction::kept,
                  std::int64_t pid = 100, const std::string& session = "") {
    LockRecord r;
    r.worker = worker;
    r.lock_path = worker + "/.runtime/agent.lock";
    LockInfo info;
    info.pid = pid;
    info.session_id = session;
    info.hostname = "here";
    r.info = info;
    r.content = "{\"pid\": " + std::to_string(pid) + "}";
    r.judgement = {verdict, "because " + std::string(to_string(verdict))};
    r.action = action;
    r.process.state = ProcessState::alive;
    return r;
}

PassReport report_with(std::deque<LockRecord> locks, const std::string& root = "/srv") {
    PassReport r;
    r.roots.push_back({root, true, ""});
    r.tmux.state = TmuxState::ok;
    r.locks = std::move(locks);
    r.stats.locks = r.locks.size();
    return r;
}

const std::string* field(const Finding& f, const std::string& key) {
    for (const auto& [k, v] : f.fields) {
        if (k == key) {
            return &v;
        }
    }
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// FindingTracker

TEST(FindingTracker, AppearsOnceStaysSilentThenResolves) {
    FindingTracker t;
    auto c1 = t.update({finding("lock.orphaned", "/srv/a")});
    ASSERT_EQ(c1.size(), 1u);
    EXPECT_EQ(c1[0].state, FindingState::appeared);
    EXPECT_EQ(c1[0].event(), "lock.orphaned");
    EXPECT_EQ(t.open_count(), 1u);

    EXPECT_TRUE(t.update({finding("lock.orphaned", "/srv/a")}).empty()) << "same again: silent";
    EXPECT_TRUE(t.update({finding("lock.orphaned", "/srv/a")}).empty());

    auto c3 = t.update({});
    ASSERT_EQ(c3.size(), 1u);
    EXPECT_EQ(c3[0].state, FindingState::resolved);
    EXPECT_EQ(c3[0].event(), "lock.orphaned");
    EXPECT_EQ(c3[0].finding.key, "/srv/a");
    EXPECT_EQ(t.open_count(), 0u);
    EXPECT_TRUE(t.update({}).empty());
}

TEST(FindingTracker, AFingerprintChangeIsLoggedAgain) {
    FindingTracker t;
    t.update({finding("lock.orphaned", "/srv/a", "v1")});
    auto c = t.update({finding("lock.orphaned", "/srv/a", "v2")});
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].state, FindingState::changed);
    EXPECT_EQ(c[0].finding.fingerprint, "v2");
    EXPECT_TRUE(t.update({finding("lock.orphaned", "/srv/a", "v2")}).empty());
}

TEST(FindingTracker, KeysAreEventAndKey) {
    FindingTracker t;
    t.update({finding("lock.orphaned", "/srv/a")});
    // The same lock under another event: the old one resolves, the new one appears.
    auto c = t.update({finding("lock.unknown", "/srv/a")});
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0].state, FindingState::resolved);
    EXPECT_EQ(c[0].event(), "lock.orphaned");
    EXPECT_EQ(c[1].state, FindingState::appeared);
    EXPECT_EQ(c[1].event(), "lock.unknown");
}

TEST(FindingTracker, ResolvedEventNameIsUsedWhenSet) {
    FindingTracker t;
    Finding f = finding("root.unavailable", "/srv");
    f.resolved_event = "root.recovered";
    f.paths.clear();
    auto c1 = t.update({f});
    ASSERT_EQ(c1.size(), 1u);
    EXPECT_EQ(c1[0].event(), "root.unavailable");
    auto c2 = t.update({});
    ASSERT_EQ(c2.size(), 1u);
    EXPECT_EQ(c2[0].event(), "root.recovered");
    EXPECT_EQ(c2[0].state, FindingState::resolved);
}

TEST(FindingTracker, FindingsUnderAnUnwalkedRootAreKept) {
    FindingTracker t;
    t.update({finding("lock.orphaned", "/srv/a/w1/.runtime/agent.lock"),
              finding("lock.orphaned", "/other/w2/.runtime/agent.lock")});
    auto c = t.update({}, {"/srv/a"});
    ASSERT_EQ(c.size(), 1u) << "only the finding outside the unwalked root resolves";
    EXPECT_EQ(c[0].finding.key, "/other/w2/.runtime/agent.lock");
    EXPECT_EQ(t.open_count(), 1u);
    // Back, still there: silent. Back, gone: resolved.
    EXPECT_TRUE(t.update({finding("lock.orphaned", "/srv/a/w1/.runtime/agent.lock")}).empty());
    auto gone = t.update({});
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].state, FindingState::resolved);
}

// ---------------------------------------------------------------------------------------------
// findings_of

TEST(FindingsOf, EachVerdictThatNeedsAttention) {
    PassReport r = report_with({
        record("/srv/live", Verdict::live),
        record("/srv/orphan", Verdict::orphaned, LockAction::kept, 1, "gone"),
        record("/srv/held", Verdict::held_by_session, LockAction::kept, 2, "s"),
        record("/srv/foreign", Verdict::foreign),
        record("/srv/unknown", Verdict::unknown),
        record("/srv/removed", Verdict::stale, LockAction::removed),
        record("/srv/would", Verdict::stale, LockAction::would_remove),
        record("/srv/changed", Verdict::stale, LockAction::skipped_changed),
    });
    LockRecord invalid;
    invalid.worker = "/srv/invalid";
    invalid.lock_path = "/srv/invalid/.runtime/agent.lock";
    invalid.judgement = {Verdict::invalid, "not a regular file (FIFO)"};
    r.locks.push_back(invalid);
    LockRecord failed = record("/srv/failed", Verdict::stale);
    failed.detail = "unlinkat agent.lock: Permission denied";
    r.locks.push_back(failed);
    r.locks.push_back(record("/srv/cancelled", Verdict::stale)); // kept, no detail: not tried

    std::map<std::string, std::string> by_worker;
    for (const auto& f : findings_of(r)) {
        ASSERT_NE(field(f, "worker"), nullptr) << f.event;
        by_worker[*field(f, "worker")] = f.event;
        EXPECT_EQ(f.key, *field(f, "lock_path"));
    }
    EXPECT_EQ(by_worker, (std::map<std::string, std::string>{
                             {"/srv/orphan", "lock.orphaned"},
                             {"/srv/held", "lock.held_by_session"},
                             {"/srv/foreign", "lock.foreign"},
                             {"/srv/unknown", "lock.unknown"},
                             {"/srv/would", "lock.would_remove"},
                             {"/srv/invalid", "lock.invalid"},
                             {"/srv/failed", "lock.remove_failed"},
                         }));
}

TEST(FindingsOf, LockFieldsCarryTheEvidence) {
    PassReport r = report_with(
        {record("/srv/orphan", Verdict::orphaned, LockAction::kept, 42, "gone-session")});
    auto fs = findings_of(r);
    ASSERT_EQ(fs.size(), 1u);
    const Finding& f = fs[0];
    EXPECT_EQ(*field(f, "lock_path"), "/srv/orphan/.runtime/agent.lock");
    EXPECT_EQ(*field(f, "pid"), "42");
    EXPECT_EQ(*field(f, "session_id"), "gone-session");
    EXPECT_EQ(*field(f, "hostname"), "here");
    EXPECT_EQ(*field(f, "verdict"), "orphaned");
    EXPECT_EQ(*field(f, "reason"), "because orphaned");
    EXPECT_EQ(*field(f, "pid_state"), "alive");
    EXPECT_EQ(*field(f, "tmux_state"), "ok");
    EXPECT_NE(field(f, "acquired_at"), nullptr);
    EXPECT_EQ(field(f, "content"), nullptr) << "content only where a lock is (to be) removed";

    LockRecord removed = record("/srv/w", Verdict::stale, LockAction::removed);
    FindingFields rf = lock_record_fields(removed, r.tmux, true);
    EXPECT_EQ(rf.back(), (std::pair<std::string, std::string>{"content", "{\"pid\": 100}"}));
}

TEST(FindingsOf, InvalidLocksAreToldApartByReason) {
    LockRecord a;
    a.worker = "/srv/w";
    a.lock_path = "/srv/w/.runtime/agent.lock";
    a.judgement = {Verdict::invalid, "not a regular file (FIFO)"};
    LockRecord b = a;
    b.judgement.reason = "too large";
    PassReport ra = report_with({a});
    PassReport rb = report_with({b});
    EXPECT_NE(findings_of(ra)[0].fingerprint, findings_of(rb)[0].fingerprint);
}

TEST(FindingsOf, DuplicateCollisionsRootsTmuxAndUnreadableDirs) {
    PassReport r = report_with({});
    r.collisions.push_back({CollisionKind::stale, {"/srv/x"}, 5, "", "stale lock in /srv/x"});
    r.collisions.push_back({CollisionKind::duplicate_session,
                            {"/srv/a", "/srv/b"},
                            0,
                            "shared",
                            "session shared is claimed by 2 workers"});
    r.collisions.push_back({CollisionKind::duplicate_pid,
                            {"/srv/c", "/srv/d"},
                            77,
                            "",
                            "live PID 77 holds 2 workers"});
    r.roots.push_back({"/gone", false, "open /gone: No such file or directory"});
    r.tmux.state = TmuxState::unknown;
    r.tmux.detail = "permission denied";
    r.walk_errors.push_back({"/srv/locked", "open /srv/locked: Permission denied"});
    r.skipped_runtimes.push_back(
        {"/srv/w/.runtime", "/srv/w/.runtime is a symlink to /elsewhere, not followed: a lock "
                            "behind it is never judged"});

    std::map<std::string, Finding> by_event;
    for (auto& f : findings_of(r)) {
        by_event[f.event] = f;
    }
    ASSERT_EQ(by_event.size(), 6u);
    const Finding& dup_s = by_event.at("collision.duplicate_session");
    EXPECT_EQ(*field(dup_s, "session_id"), "shared");
    EXPECT_EQ(*field(dup_s, "workers"), "/srv/a,/srv/b");
    EXPECT_EQ(*field(dup_s, "kind"), "duplicate-session");
    const Finding& dup_p = by_event.at("collision.duplicate_pid");
    EXPECT_EQ(*field(dup_p, "pid"), "77");
    const Finding& root = by_event.at("root.unavailable");
    EXPECT_EQ(root.resolved_event, "root.recovered");
    EXPECT_EQ(*field(root, "root"), "/gone");
    EXPECT_TRUE(root.paths.empty()) << "a root finding must not freeze itself";
    const Finding& tmux = by_event.at("tmux.unreachable");
    EXPECT_EQ(tmux.resolved_event, "tmux.recovered");
    EXPECT_EQ(*field(tmux, "tmux_detail"), "permission denied");
    EXPECT_EQ(*field(by_event.at("dir.unreadable"), "path"), "/srv/locked");
    const Finding& symlinked = by_event.at("runtime.symlinked");
    EXPECT_EQ(*field(symlinked, "path"), "/srv/w/.runtime");
    EXPECT_NE(field(symlinked, "reason")->find("symlink to /elsewhere"), std::string::npos);
    EXPECT_EQ(symlinked.paths, std::vector<std::string>{"/srv/w/.runtime"})
        << "kept, not resolved, while its root is down";
    EXPECT_EQ(unavailable_roots(r), std::vector<std::string>{"/gone"});
}

// ---------------------------------------------------------------------------------------------
// PassLogger: what reaches the log

class PassLoggerTest : public ::testing::Test {
protected:
    PassLoggerTest()
        : m_sink(std::make_shared<spdlog::sinks::ostream_sink_mt>(m_out)),
          m_log(daemon::LogFormat::json, daemon::LogLevel::debug, m_sink), m_pass_log(m_log) {}

    // Logs a pass; returns the events it produced.
    std::vector<json::object> pass(const PassReport& r, bool cancelled = false,
                                   std::chrono::steady_clock::duration later = 0s) {
        m_out.str("");
        m_pass_log.log_pass(r, cancelled, m_t0 + later);
        std::vector<json::object> events;
        std::istringstream in(m_out.str());
        for (std::string line; std::getline(in, line);) {
            boost::system::error_code ec;
            json::value v = json::parse(line, ec);
            EXPECT_FALSE(ec) << line;
            events.push_back(v.as_object());
        }
        return events;
    }

    static std::vector<json::object> named(const std::vector<json::object>& events,
                                           std::string_view name) {
        std::vector<json::object> out;
        for (const auto& e : events) {
            if (e.at("event").is_string() && e.at("event").get_string() == name) {
                out.push_back(e);
            }
        }
        return out;
    }

    std::ostringstream m_out;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> m_sink;
    daemon::EventLog m_log;
    daemon::PassLogger m_pass_log;
    std::chrono::steady_clock::time_point m_t0 = std::chrono::steady_clock::now();
};

TEST_F(PassLoggerTest, AFindingIsLoggedWhenItAppearsAndWhenItGoesAway) {
    PassReport with = report_with({record("/srv/o", Verdict::orphaned, LockAction::kept, 9, "s")});
    auto first = named(pass(with), "lock.orphaned");
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].at("state"), "appeared");
    EXPECT_EQ(first[0].at("level"), "warn");
    EXPECT_EQ(first[0].at("lock_path"), "/srv/o/.runtime/agent.lock");
    EXPECT_EQ(first[0].at("pid").as_int64(), 9);

    EXPECT_TRUE(named(pass(with, false, 1s), "lock.orphaned").empty());
    EXPECT_TRUE(named(pass(with, false, 2s), "lock.orphaned").empty());

    auto gone = named(pass(report_with({}), false, 3s), "lock.orphaned");
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].at("state"), "resolved");
    EXPECT_EQ(gone[0].at("now"), "gone");
    EXPECT_EQ(gone[0].at("level"), "info");
    EXPECT_TRUE(named(pass(report_with({}), false, 4s), "lock.orphaned").empty());
}

TEST_F(PassLoggerTest, EveryRemovalIsLoggedEveryTime) {
    PassReport r = report_with({record("/srv/s", Verdict::stale, LockAction::removed, 5)});
    for (int i = 0; i < 3; ++i) {
        auto removed = named(pass(r, false, std::chrono::seconds(i)), "lock.removed");
        ASSERT_EQ(removed.size(), 1u) << i;
        EXPECT_EQ(removed[0].at("content"), "{\"pid\": 5}");
        EXPECT_EQ(removed[0].at("level"), "info");
        EXPECT_EQ(removed[0].at("pid_state"), "alive");
        EXPECT_EQ(removed[0].at("tmux_state"), "ok");
        EXPECT_EQ(removed[0].at("reason"), "because stale");
    }
}

TEST_F(PassLoggerTest, ACancelledPassResolvesNothing) {
    PassReport with = report_with({record("/srv/o", Verdict::orphaned)});
    pass(with);
    auto events = pass(report_with({}), true, 1s);
    EXPECT_TRUE(named(events, "lock.orphaned").empty());
    auto completed = named(events, "pass.completed");
    ASSERT_EQ(completed.size(), 1u);
    EXPECT_EQ(completed[0].at("cancelled"), "true");
    // The next full pass sees it gone.
    EXPECT_EQ(named(pass(report_with({}), false, 2s), "lock.orphaned").size(), 1u);
}

TEST_F(PassLoggerTest, FindingsUnderAnUnavailableRootWaitForItsReturn) {
    PassReport with = report_with({record("/srv/o", Verdict::orphaned)});
    pass(with);
    PassReport down = report_with({});
    down.roots[0] = {"/srv", false, "open /srv: No such file or directory"};
    auto events = pass(down, false, 1s);
    EXPECT_TRUE(named(events, "lock.orphaned").empty());
    ASSERT_EQ(named(events, "root.unavailable").size(), 1u);
    EXPECT_TRUE(named(pass(down, false, 2s), "root.unavailable").empty()) << "once, not per pass";
    auto back = pass(with, false, 3s);
    EXPECT_EQ(named(back, "root.recovered").size(), 1u);
    EXPECT_TRUE(named(back, "lock.orphaned").empty()) << "still there: nothing new to say";
}

TEST_F(PassLoggerTest, SummaryAtInfoFirstThenDebugUntilTheIntervalPasses) {
    PassReport r = report_with({});
    auto level_of_summary = [&](std::chrono::steady_clock::duration at) {
        auto completed = named(pass(r, false, at), "pass.completed");
        EXPECT_EQ(completed.size(), 1u);
        return std::string(completed.at(0).at("level").as_string());
    };
    EXPECT_EQ(level_of_summary(0s), "info");
    EXPECT_EQ(level_of_summary(30s), "debug");
    EXPECT_EQ(level_of_summary(4min), "debug");
    EXPECT_EQ(level_of_summary(5min), "info");
    EXPECT_EQ(level_of_summary(6min), "debug");
    EXPECT_EQ(m_pass_log.pass_count(), 5u);
}

TEST_F(PassLoggerTest, PassCompletedCarriesTheCounts) {
    PassReport r = report_with({record("/srv/s", Verdict::stale, LockAction::removed)});
    r.stats.removed = 1;
    r.stats.dirs = 12;
    auto completed = named(pass(r), "pass.completed");
    ASSERT_EQ(completed.size(), 1u);
    const auto& c = completed[0];
    EXPECT_EQ(c.at("pass").as_int64(), 1);
    EXPECT_EQ(c.at("locks").as_int64(), 1);
    EXPECT_EQ(c.at("removed").as_int64(), 1);
    EXPECT_EQ(c.at("dirs").as_int64(), 12);
    EXPECT_EQ(c.at("tmux"), "ok");
    for (auto key : {"root_count", "roots_unavailable", "would_remove", "unreadable_dirs",
                     "collisions", "open_findings", "elapsed_ms"}) {
        EXPECT_TRUE(c.contains(key)) << key;
    }
}

TEST_F(PassLoggerTest, TmuxUnreachableThenRecoveredSaysWhatTmuxAnswersNow) {
    PassReport down = report_with({});
    down.tmux.state = TmuxState::unknown;
    down.tmux.detail = "error connecting to /tmp/tmux-1/x (Permission denied)";
    auto first = named(pass(down), "tmux.unreachable");
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].at("level"), "warn");
    EXPECT_EQ(first[0].at("tmux_detail").as_string(), down.tmux.detail);
    EXPECT_TRUE(named(pass(down, false, 1s), "tmux.unreachable").empty());
    PassReport up = report_with({});
    up.tmux.state = TmuxState::no_server;
    auto back = named(pass(up, false, 2s), "tmux.recovered");
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0].at("state"), "resolved");
    EXPECT_EQ(back[0].at("tmux_state"), "no-server");
    EXPECT_FALSE(back[0].contains("tmux_detail"));
}

TEST_F(PassLoggerTest, AStreamedPassLogsEachLockAsItComesAndResolutionsAtTheEnd) {
    pass(report_with({record("/srv/o", Verdict::orphaned, LockAction::kept, 4, "t")}));
    m_out.str("");
    // As the daemon's worker thread does: each lock logged when the pass hands it over.
    m_pass_log.begin_pass();
    m_pass_log.log_lock(record("/srv/h", Verdict::held_by_session, LockAction::kept, 3, "s"),
                        TmuxFacts{});
    const std::string first = m_out.str();
    EXPECT_NE(first.find("\"event\":\"lock.held_by_session\""), std::string::npos)
        << "logged at once, before the pass ends: " << first;
    m_pass_log.log_lock(record("/srv/s", Verdict::stale, LockAction::removed, 5), TmuxFacts{});
    PassReport end =
        report_with({record("/srv/h", Verdict::held_by_session, LockAction::kept, 3, "s"),
                     record("/srv/s", Verdict::stale, LockAction::removed, 5)});
    end.locks.clear(); // streamed: only the summaries are left
    m_pass_log.end_pass(end, false, m_t0 + 1s);
    std::vector<std::string> order;
    std::istringstream in(m_out.str());
    for (std::string line; std::getline(in, line);) {
        const json::object o = json::parse(line).as_object();
        order.push_back(std::string(o.at("event").as_string()) + "/" +
                        std::string(o.contains("state") ? o.at("state").as_string() : ""));
        if (o.at("event") == "lock.orphaned") {
            // A resolved lock finding names the lock and says what became of it; its other
            // fields were logged when it appeared.
            EXPECT_EQ(o.at("now"), "gone");
            EXPECT_EQ(o.at("lock_path"), "/srv/o/.runtime/agent.lock");
            EXPECT_EQ(o.at("worker"), "/srv/o");
            EXPECT_FALSE(o.contains("pid"));
        }
    }
    EXPECT_EQ(order, (std::vector<std::string>{"lock.held_by_session/appeared", "lock.removed/",
                                               "lock.orphaned/resolved", "pass.completed/"}));
}

TEST_F(PassLoggerTest, ACollisionOfManyWorkersNamesTwentyAndCountsThemAll) {
    PassReport r = report_with({});
    Collision c;
    c.kind = CollisionKind::duplicate_pid;
    c.pid = 7;
    for (int i = 0; i < 30; ++i) {
        c.workers.emplace_back("/srv/w" + std::to_string(10 + i));
    }
    c.message = "live PID 7 holds 30 workers: " + list_workers(c.workers, ", ");
    r.collisions.push_back(c);
    auto dup = named(pass(r), "collision.duplicate_pid");
    ASSERT_EQ(dup.size(), 1u);
    EXPECT_EQ(dup[0].at("worker_count"), "30");
    const std::string workers(dup[0].at("workers").as_string());
    EXPECT_NE(workers.find("/srv/w29,"), std::string::npos) << workers;
    EXPECT_EQ(workers.find("/srv/w30"), std::string::npos) << workers;
    EXPECT_NE(workers.find("... and 10 more"), std::string::npos) << workers;
    auto gone = named(pass(report_with({}), false, 1s), "collision.duplicate_pid");
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].at("state"), "resolved");
    EXPECT_EQ(gone[0].at("worker_count"), "30");
    EXPECT_EQ(gone[0].at("pid").as_int64(), 7);
}

TEST_F(PassLoggerTest, AResolvedLockFindingSaysWhatBecameOfTheLock) {
    pass(report_with({record("/srv/h", Verdict::held_by_session, LockAction::kept, 3, "s"),
                      record("/srv/o", Verdict::orphaned, LockAction::kept, 4, "t")}));
    auto events = pass(report_with({record("/srv/h", Verdict::stale, LockAction::removed, 3, "s"),
                                    record("/srv/o", Verdict::live, LockAction::kept, 4, "t")}),
                       false, 1s);
    auto held = named(events, "lock.held_by_session");
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].at("state"), "resolved");
    EXPECT_EQ(held[0].at("now"), "removed");
    auto orphan = named(events, "lock.orphaned");
    ASSERT_EQ(orphan.size(), 1u);
    EXPECT_EQ(orphan[0].at("now"), "live");
    EXPECT_EQ(named(events, "lock.removed").size(), 1u);
}

TEST(StatusLine, OneLineSummary) {
    PassReport r = report_with({record("/srv/a", Verdict::live)});
    r.stats.locks = 340;
    r.stats.removed = 3;
    r.collisions.push_back({CollisionKind::duplicate_pid, {"/a", "/b"}, 1, "", "m"});
    r.collisions.push_back({CollisionKind::duplicate_session, {"/a", "/c"}, 0, "s", "m"});
    r.collisions.push_back({CollisionKind::stale, {"/x"}, 1, "", "m"});
    EXPECT_EQ(daemon::status_line(12, r), "pass 12: 340 locks, 3 removed, tmux ok, 2 collisions");
    r.roots.push_back({"/gone", false, "missing"});
    r.tmux.state = TmuxState::unknown;
    EXPECT_EQ(
        daemon::status_line(13, r),
        "pass 13: 340 locks, 3 removed, tmux unknown, 2 collisions, 1 of 2 roots unavailable");
}

// The --once text report: one line per lock, its reason said once. On removal (and a dry run's
// would-remove) the reaper's detail is the re-check's restatement of that reason; other details
// (why a removal was skipped or failed) still follow it.
std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++n;
    }
    return n;
}

TEST(TextReport, AReusedPidVerdictPrintsItsReasonOnce) {
    const std::string reason = "PID 4242 was reused: the process started at "
                               "2026-11-27T05:01:00.123456789Z, after the lock was acquired at "
                               "2026-11-27T05:00:00Z";
    // The re-check computed the start time a moment later, so its words differ a little.
    const std::string recheck = "PID 4242 was reused: the process started at "
                                "2026-11-27T05:01:00.123456812Z, after the lock was acquired at "
                                "2026-11-27T05:00:00Z";
    for (LockAction action : {LockAction::would_remove, LockAction::removed}) {
        LockRecord rec = record("/srv/w", Verdict::stale, action, 4242);
        rec.judgement.reason = reason;
        rec.detail = recheck;
        const std::string text = daemon::format_report_text(report_with({rec}));
        EXPECT_EQ(occurrences(text, "was reused"), 1u) << text;
        EXPECT_NE(text.find(std::string(to_string(action)) +
                            " stale /srv/w/.runtime/agent.lock "
                            "pid=4242: " +
                            reason + "\n"),
                  std::string::npos)
            << text;
    }
    LockRecord skipped = record("/srv/w", Verdict::stale, LockAction::skipped_changed, 4242);
    skipped.judgement.reason = reason;
    skipped.detail = "lock changed since it was judged";
    const std::string text = daemon::format_report_text(report_with({skipped}));
    EXPECT_NE(text.find(reason + " (lock changed since it was judged)\n"), std::string::npos)
        << text;
    LockRecord failed = record("/srv/w", Verdict::stale, LockAction::kept, 4242);
    failed.judgement.reason = reason;
    failed.detail = "unlink /srv/w/.runtime/agent.lock: Permission denied";
    EXPECT_NE(daemon::format_report_text(report_with({failed}))
                  .find(reason + " (unlink /srv/w/.runtime/agent.lock: Permission denied)\n"),
              std::string::npos);
}

} // namespace
} // namespace agentlock
