// One cleaner pass over real trees: the seed's FindAllLocks, CleanStaleLocks and DetectCollisions,
// and what a cleaner must never do: remove on unknown tmux state, remove a lock re-acquired
// meanwhile, drop or remove an unparseable lock, miss a collision, apply a different staleness
// rule than acquire, or create files in worker trees.
#include "fakes.hpp"
#include "test_support.hpp"

#include <agentlock/pass.hpp>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <unistd.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::TempDir;

class PassTest : public ::testing::Test {
protected:
    std::string root() const { return m_dir.sub("root"); }
    std::string lock_of(const std::string& worker) const {
        return root() + "/" + worker + "/.runtime/agent.lock";
    }
    void put(const std::string& worker, long long pid, const std::string& session = "",
             const std::string& host = "") {
        test::write_file(lock_of(worker),
                         test::go_lock_json(pid, test::now_rfc3339(), session,
                                            host.empty() ? test::local_hostname() : host));
    }
    PassReport pass(bool dry_run = false) {
        PassOptions o;
        o.roots = {root()};
        o.dry_run = dry_run;
        o.root_servers = {ServerRef{TmuxServer{m_tmux.socket_name(), ""}, {}}};
        SystemTmuxProbes tmux;
        SystemProcessProbe processes;
        return run_pass(o, processes, tmux, read_host_facts());
    }
    static const LockRecord* find(const PassReport& r, const std::string& worker_suffix) {
        for (const auto& rec : r.locks) {
            if (rec.worker.size() >= worker_suffix.size() &&
                rec.worker.compare(rec.worker.size() - worker_suffix.size(), worker_suffix.size(),
                                   worker_suffix) == 0) {
                return &rec;
            }
        }
        return nullptr;
    }
    TempDir m_dir;
    test::TmuxServerFixture m_tmux;
};

TEST_F(PassTest, JudgesEveryKindOfLockAndRemovesOnlyTheStaleOne) {
    Child live = test::spawn_sleeper();
    Child orphan_owner = test::spawn_sleeper();
    m_tmux.new_session("held");
    put("rig/live", live.pid());
    put("rig/stale", test::dead_pid());
    put("rig/stale-session", test::dead_pid(), "gone-session");
    put("rig/held", test::dead_pid(), "held");
    put("rig/orphan", orphan_owner.pid(), "no-such-session");
    put("rig/foreign", test::dead_pid(), "", "another-host");
    test::write_file(lock_of("rig/invalid"), "{not json");
    const std::string stale_content = test::read_file(lock_of("rig/stale"));

    PassReport r = pass();
    ASSERT_EQ(r.roots.size(), 1u);
    EXPECT_TRUE(r.roots[0].ok) << r.roots[0].error;
    EXPECT_EQ(r.tmux.state, TmuxState::ok) << r.tmux.detail;
    ASSERT_EQ(r.locks.size(), 7u);
    EXPECT_EQ(r.stats.locks, 7u);
    EXPECT_EQ(r.stats.removed, 2u);

    struct Want {
        const char* worker;
        Verdict verdict;
        LockAction action;
        bool on_disk;
    };
    for (const Want& w : {Want{"rig/live", Verdict::live, LockAction::kept, true},
                          Want{"rig/stale", Verdict::stale, LockAction::removed, false},
                          Want{"rig/stale-session", Verdict::stale, LockAction::removed, false},
                          Want{"rig/held", Verdict::held_by_session, LockAction::kept, true},
                          Want{"rig/orphan", Verdict::orphaned, LockAction::kept, true},
                          Want{"rig/foreign", Verdict::foreign, LockAction::kept, true},
                          Want{"rig/invalid", Verdict::invalid, LockAction::kept, true}}) {
        const LockRecord* rec = find(r, w.worker);
        ASSERT_NE(rec, nullptr) << w.worker;
        EXPECT_EQ(rec->judgement.verdict, w.verdict)
            << w.worker << ": " << to_string(rec->judgement.verdict) << " "
            << rec->judgement.reason;
        EXPECT_EQ(rec->action, w.action) << w.worker << " " << rec->detail;
        EXPECT_EQ(test::exists(lock_of(w.worker)), w.on_disk) << w.worker;
        EXPECT_FALSE(rec->judgement.reason.empty()) << w.worker;
    }
    // Nothing is lost: the removed lock's full content comes back.
    EXPECT_EQ(find(r, "rig/stale")->content, stale_content);
    // The unparseable lock is reported with its bytes and kept: it may be mid-write.
    EXPECT_EQ(find(r, "rig/invalid")->content, "{not json");
    EXPECT_EQ(test::read_file(lock_of("rig/invalid")), "{not json");
}

TEST_F(PassTest, DryRunRemovesNothing) {
    put("w", test::dead_pid());
    PassReport r = pass(true);
    ASSERT_EQ(r.locks.size(), 1u);
    EXPECT_EQ(r.locks[0].action, LockAction::would_remove);
    EXPECT_EQ(r.stats.removed, 0u);
    EXPECT_TRUE(test::exists(lock_of("w")));
}

TEST_F(PassTest, TheCleanerCreatesNoFilesInWorkerTrees) {
    put("w1", test::dead_pid());
    Child live = test::spawn_sleeper();
    put("w2", live.pid());
    pass();
    EXPECT_FALSE(test::exists(root() + "/w1/.runtime/agent.lock.flock"));
    EXPECT_FALSE(test::exists(root() + "/w2/.runtime/agent.lock.flock"));
    auto listing =
        test::run_command("find '" + root() + "' ! -type d -newer '" + lock_of("w2") + "'");
    EXPECT_EQ(listing.out, "") << "files appeared: " << listing.out;
}

TEST_F(PassTest, UnknownTmuxNeverLeadsToRemoval) {
    put("sess", test::dead_pid(), "some-session");
    put("nosess", test::dead_pid());
    PassOptions o;
    o.roots = {root()};
    test::FakeTmuxProbe tmux;
    tmux.facts = test::tmux_state(TmuxState::unknown, "error connecting: Permission denied");
    SystemProcessProbe processes;
    PassReport r = run_pass(o, processes, tmux, read_host_facts());
    EXPECT_EQ(find(r, "/sess")->judgement.verdict, Verdict::unknown);
    EXPECT_EQ(find(r, "/sess")->action, LockAction::kept);
    EXPECT_TRUE(test::exists(lock_of("sess")));
    // A lock that records no session does not depend on tmux at all.
    EXPECT_EQ(find(r, "/nosess")->action, LockAction::removed);
    EXPECT_EQ(tmux.calls, 1) << "one tmux query per pass";
}

TEST_F(PassTest, TheRecheckAsksTmuxAgainBeforeRemovingASessionsLock) {
    put("w", test::dead_pid(), "late-session");
    // A probe that reports no sessions for the pass's query, then the session once it exists.
    class AppearingSession final : public TmuxProbe {
    public:
        TmuxFacts query() override {
            return ++calls == 1 ? test::tmux_ok({}) : test::tmux_ok({"late-session"});
        }
        int calls = 0;
    } tmux;
    PassOptions o;
    o.roots = {root()};
    SystemProcessProbe processes;
    PassReport r = run_pass(o, processes, tmux, read_host_facts());
    ASSERT_EQ(r.locks.size(), 1u);
    EXPECT_EQ(r.locks[0].action, LockAction::skipped_changed) << r.locks[0].detail;
    EXPECT_TRUE(test::exists(lock_of("w")));
    EXPECT_EQ(tmux.calls, 2);
}

TEST_F(PassTest, ReportsTheCollisionsTheSeedPromised) {
    Child agent = test::spawn_sleeper();
    Child other = test::spawn_sleeper();
    m_tmux.new_session("shared");
    put("a", agent.pid(), "shared");
    put("b", other.pid(), "shared");
    put("c", agent.pid(), "");
    PassReport r = pass();
    bool dup_session = false;
    bool dup_pid = false;
    for (const auto& c : r.collisions) {
        if (c.kind == CollisionKind::duplicate_session) {
            dup_session = true;
            EXPECT_EQ(c.session_id, "shared");
            EXPECT_EQ(worker_names(c.workers),
                      (std::vector<std::string>{root() + "/a", root() + "/b"}));
        }
        if (c.kind == CollisionKind::duplicate_pid) {
            dup_pid = true;
            EXPECT_EQ(c.pid, agent.pid());
            EXPECT_EQ(worker_names(c.workers),
                      (std::vector<std::string>{root() + "/a", root() + "/c"}));
        }
    }
    EXPECT_TRUE(dup_session);
    EXPECT_TRUE(dup_pid);
}

TEST_F(PassTest, AMissingRootIsReportedNotThrown) {
    PassOptions o;
    o.roots = {m_dir.sub("nope"), root()};
    put("w", test::dead_pid());
    test::FakeTmuxProbe tmux;
    tmux.facts = test::tmux_state(TmuxState::no_server);
    SystemProcessProbe processes;
    PassReport r = run_pass(o, processes, tmux, read_host_facts());
    ASSERT_EQ(r.roots.size(), 2u);
    EXPECT_FALSE(r.roots[0].ok);
    EXPECT_NE(r.roots[0].error.find(m_dir.sub("nope")), std::string::npos) << r.roots[0].error;
    EXPECT_TRUE(r.roots[1].ok);
    EXPECT_EQ(r.stats.removed, 1u);
}

TEST_F(PassTest, ACancelledPassRemovesNothing) {
    put("w", test::dead_pid());
    std::atomic<bool> cancel{true};
    PassOptions o;
    o.roots = {root()};
    o.cancel = &cancel;
    test::FakeTmuxProbe tmux;
    SystemProcessProbe processes;
    PassReport r = run_pass(o, processes, tmux, read_host_facts());
    EXPECT_EQ(r.stats.removed, 0u);
    EXPECT_TRUE(test::exists(lock_of("w")));
}

// A sink that raises the cancel flag once it has seen `after` locks (as SIGTERM would).
class CancellingSink final : public PassSink {
public:
    CancellingSink(std::atomic<bool>& cancel, std::size_t after)
        : m_cancel(cancel), m_after(after) {}
    void on_tmux(const std::vector<TmuxServerReport>&) override {}
    void on_lock(LockRecord&&) override {
        if (++m_seen >= m_after) {
            m_cancel = true;
        }
    }
    std::size_t seen() const { return m_seen; }

private:
    std::atomic<bool>& m_cancel;
    std::size_t m_after;
    std::size_t m_seen = 0;
};

// SIGTERM during the walk of a big root: the walk stops instead of reading the rest of the
// tree, the root is reported as cut short (so nothing it did not reach looks gone), and no lock
// is removed after the cancel.
TEST_F(PassTest, ACancelDuringTheWalkStopsItAndMarksTheRootCutShort) {
    for (int i = 0; i < 200; ++i) {
        put("rig" + std::to_string(i / 20) + "/w" + std::to_string(i), test::dead_pid());
    }
    for (unsigned threads : {1U, 3U}) {
        std::atomic<bool> cancel{false};
        PassOptions o;
        o.roots = {root()};
        o.cancel = &cancel;
        o.dry_run = true;
        o.walk.threads = threads;
        test::FakeTmuxProbe tmux;
        SystemProcessProbe processes;
        CancellingSink sink(cancel, 5);
        PassReport r = run_pass(o, processes, tmux, read_host_facts(), sink);
        ASSERT_EQ(r.roots.size(), 1u);
        EXPECT_FALSE(r.roots[0].ok) << threads << " threads";
        EXPECT_EQ(r.roots[0].error, "pass cancelled") << threads << " threads";
        // Each walker stops at its next directory: far fewer than the 200 locks were judged.
        EXPECT_GE(sink.seen(), 5u);
        EXPECT_LT(sink.seen(), 100u) << threads << " threads";
        EXPECT_LT(r.stats.dirs, 200u) << threads << " threads";
        EXPECT_EQ(r.stats.would_remove, 5u) << "none after the cancel, " << threads << " threads";
    }
    // Not cancelled: the same tree is walked whole and the root is fine.
    PassReport whole = pass(true);
    EXPECT_TRUE(whole.roots[0].ok);
    EXPECT_EQ(whole.stats.locks, 200u);
}

TEST_F(PassTest, TheJsonReportHasTheDocumentedShape) {
    Child live = test::spawn_sleeper();
    m_tmux.new_session("s");
    put("live", live.pid());
    put("stale", test::dead_pid());
    test::write_file(lock_of("bad\xff\nname"), "garbage");
    namespace json = boost::json;
    boost::system::error_code ec;
    json::value doc = json::parse(report_to_json(pass()), ec);
    ASSERT_FALSE(ec) << ec.message();
    const json::object& o = doc.as_object();
    for (const char* key : {"roots", "root_errors", "tmux", "tmux_servers", "locks", "collisions",
                            "walk_errors", "skipped_runtimes", "stats"}) {
        EXPECT_TRUE(o.contains(key)) << key;
    }
    EXPECT_EQ(o.at("roots").as_array().at(0).as_string(), root());
    EXPECT_EQ(o.at("tmux").at("state").as_string(), "ok");
    EXPECT_TRUE(o.at("tmux").at("detail").is_string());
    // Every server with its roots: here the one the whole pass asked.
    const auto& servers = o.at("tmux_servers").as_array();
    ASSERT_EQ(servers.size(), 1u) << json::serialize(servers);
    const auto& server = servers.at(0).as_object();
    EXPECT_EQ(server.at("server").as_string(), "-L " + m_tmux.socket_name());
    ASSERT_EQ(server.at("roots").as_array().size(), 1u);
    EXPECT_EQ(server.at("roots").as_array().at(0).as_string(), root());
    EXPECT_EQ(server.at("state").as_string(), "ok");
    EXPECT_TRUE(server.at("detail").is_string());
    EXPECT_EQ(server.at("sessions").to_number<std::uint64_t>(), 1u);
    EXPECT_EQ(server.at("panes").to_number<std::uint64_t>(), 1u);
    const auto& locks = o.at("locks").as_array();
    ASSERT_EQ(locks.size(), 3u);
    for (const auto& l : locks) {
        for (const char* key : {"worker", "lock_path", "pid", "session_id", "hostname",
                                "acquired_at", "verdict", "reason", "action"}) {
            EXPECT_TRUE(l.as_object().contains(key)) << key;
        }
    }
    const auto& stats = o.at("stats").as_object();
    for (const char* key : {"dirs", "locks", "removed", "would_remove", "unreadable_dirs",
                            "symlinked_runtimes", "elapsed_ms"}) {
        EXPECT_TRUE(stats.contains(key)) << key;
    }
    EXPECT_EQ(stats.at("locks").to_number<std::uint64_t>(), 3u);
    // A path that is not UTF-8: its bad byte is written \xNN, as the logs write it.
    bool saw_bad_name = false;
    for (const auto& l : locks) {
        saw_bad_name =
            saw_bad_name || l.at("lock_path").as_string() == lock_of("bad\\xff\nname").c_str();
    }
    EXPECT_TRUE(saw_bad_name) << json::serialize(locks);
    EXPECT_EQ(stats.at("removed").to_number<std::uint64_t>(), 1u);
    bool saw_removed_content = false;
    for (const auto& l : locks) {
        if (l.at("action").as_string() == "removed") {
            saw_removed_content = l.as_object().contains("content") &&
                                  l.at("content").as_string().find("\"pid\"") != json::string::npos;
        }
    }
    EXPECT_TRUE(saw_removed_content);
}

} // namespace
} // namespace agentlock
