// The parts that let one pass and the daemon's tables scale to fleets: interned paths
// (PathRef), the streaming pass and its JSON writer, the tracker's streaming rounds and scoped
// updates, and collision messages that stay short however many workers collide.
#include "fakes.hpp"
#include "test_support.hpp"

#include <agentlock/collisions.hpp>
#include <agentlock/findings.hpp>
#include <agentlock/pass.hpp>
#include <agentlock/path_ref.hpp>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace agentlock {
namespace {

namespace json = boost::json;
using test::Child;
using test::TempDir;

// ---------------------------------------------------------------------------------------------
// PathRef

TEST(PathRef, EqualTextSharesOnePoolEntry) {
    const std::size_t before = PathRef::pooled();
    const std::string text = "/scale/parts/equal-text";
    const std::string same = std::string("/scale/parts/") + "equal-text"; // another buffer
    PathRef a(text);
    PathRef b(same);
    EXPECT_EQ(PathRef::pooled(), before + 1);
    EXPECT_TRUE(a == b);
    EXPECT_EQ(a.view().data(), b.view().data()) << "equal text must share its storage";
    EXPECT_EQ(a.view(), text);
    EXPECT_EQ(b.str(), text);
    EXPECT_FALSE(a.empty());

    PathRef other("/scale/parts/other-text");
    EXPECT_EQ(PathRef::pooled(), before + 2);
    EXPECT_FALSE(a == other);
    EXPECT_TRUE(a == std::string_view(text));
    EXPECT_FALSE(other == std::string_view(text));
}

TEST(PathRef, ThePoolEntryGoesWithTheLastCopy) {
    const std::size_t before = PathRef::pooled();
    {
        PathRef a("/scale/parts/last-copy");
        {
            PathRef copy = a;
            PathRef again("/scale/parts/last-copy");
            EXPECT_EQ(PathRef::pooled(), before + 1);
        }
        EXPECT_EQ(PathRef::pooled(), before + 1) << "a still holds the path";
        EXPECT_EQ(a.view(), "/scale/parts/last-copy");
    }
    EXPECT_EQ(PathRef::pooled(), before);
    // Made again after it went away, it comes back with the same text.
    PathRef back("/scale/parts/last-copy");
    EXPECT_EQ(back.view(), "/scale/parts/last-copy");
    EXPECT_EQ(PathRef::pooled(), before + 1);
}

TEST(PathRef, CopiesMovesAndAssignmentsKeepTheText) {
    const std::size_t before = PathRef::pooled();
    PathRef a("/scale/parts/copied");
    PathRef copy(a);
    EXPECT_EQ(copy.view(), "/scale/parts/copied");
    EXPECT_TRUE(copy == a);

    PathRef moved(std::move(copy));
    EXPECT_EQ(moved.view(), "/scale/parts/copied");
    EXPECT_TRUE(moved == a);
    EXPECT_EQ(PathRef::pooled(), before + 1);

    // Copy assignment over another path releases that one.
    PathRef b("/scale/parts/overwritten");
    EXPECT_EQ(PathRef::pooled(), before + 2);
    b = a;
    EXPECT_EQ(b.view(), "/scale/parts/copied");
    EXPECT_EQ(PathRef::pooled(), before + 1);

    // Move assignment likewise.
    PathRef c("/scale/parts/move-overwritten");
    EXPECT_EQ(PathRef::pooled(), before + 2);
    PathRef source("/scale/parts/copied");
    c = std::move(source);
    EXPECT_EQ(c.view(), "/scale/parts/copied");
    EXPECT_EQ(PathRef::pooled(), before + 1);

    // Assigning a PathRef to itself keeps it.
    PathRef& alias = c;
    c = alias;
    EXPECT_EQ(c.view(), "/scale/parts/copied");
    c = std::move(alias);
    EXPECT_EQ(c.view(), "/scale/parts/copied");
    EXPECT_EQ(PathRef::pooled(), before + 1);

    // Assigning the empty path releases the old one once nothing else holds it.
    a = PathRef();
    b = PathRef();
    c = PathRef();
    moved = PathRef();
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(PathRef::pooled(), before);
}

TEST(PathRef, OrdersAsStringsDo) {
    const std::vector<std::string> texts = {"/a",     "/a/b",  "/a-b",        "/ab",
                                            "/b",     "/a/",   "/A",          "/a/b/c",
                                            "/r/w10", "/r/w9", "/r/\xc3\xa9", "/r/z"};
    for (const auto& x : texts) {
        for (const auto& y : texts) {
            const PathRef px(x);
            const PathRef py(y);
            EXPECT_EQ(px <=> py, x <=> y) << x << " vs " << y;
            EXPECT_EQ(px <=> std::string_view(y), x <=> y) << x << " vs " << y;
            EXPECT_EQ(px == py, x == y) << x << " vs " << y;
        }
    }
    std::vector<PathRef> refs;
    for (const auto& t : texts) {
        refs.emplace_back(t);
    }
    std::sort(refs.begin(), refs.end());
    std::vector<std::string> sorted = texts;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::string> got;
    for (const auto& r : refs) {
        got.push_back(r.str());
    }
    EXPECT_EQ(got, sorted);
}

int sign(int c) {
    return (c > 0) - (c < 0);
}

TEST(PathRef, CompareJoinedComparesTheJoinedText) {
    const std::vector<std::string> parts = {"",   "/r/a", "/r/a/", "/.runtime/agent.lock",
                                            "/r", "/a",   "/r/b",  "/r/\xc3\xa9"};
    for (const auto& a1 : parts) {
        for (const auto& a2 : parts) {
            for (const auto& b1 : parts) {
                for (const auto& b2 : parts) {
                    EXPECT_EQ(sign(compare_joined(a1, a2, b1, b2)),
                              sign((a1 + a2).compare(b1 + b2)))
                        << "'" << a1 << "'+'" << a2 << "' vs '" << b1 << "'+'" << b2 << "'";
                }
            }
        }
    }
}

TEST(PathRef, PathLessFindsByStringWithoutPoolingIt) {
    std::map<PathRef, int, PathLess> table;
    table.emplace(PathRef("/scale/map/b"), 2);
    table.emplace(PathRef("/scale/map/a"), 1);
    table.emplace(PathRef("/scale/map/c"), 3);
    const std::size_t before = PathRef::pooled();

    const std::string key = "/scale/map/b";
    auto it = table.find(key);
    ASSERT_NE(it, table.end());
    EXPECT_EQ(it->second, 2);
    EXPECT_EQ(it->first.view(), key);
    EXPECT_EQ(table.find(std::string("/scale/map/a"))->second, 1);
    EXPECT_EQ(table.find(std::string("/scale/map/d")), table.end());
    EXPECT_EQ(table.find(std::string("/scale/map")), table.end());
    EXPECT_EQ(table.count(std::string("/scale/map/c")), 1u);
    EXPECT_EQ(PathRef::pooled(), before) << "a lookup by string must not pool the string";

    std::vector<std::string> order;
    for (const auto& [k, v] : table) {
        order.push_back(k.str());
    }
    EXPECT_EQ(order, (std::vector<std::string>{"/scale/map/a", "/scale/map/b", "/scale/map/c"}));
}

TEST(PathRef, TheEmptyPathHasAnEmptyView) {
    const std::size_t before = PathRef::pooled();
    PathRef none;
    PathRef from_empty{std::string_view{}};
    PathRef from_empty_text(std::string_view(""));
    EXPECT_TRUE(none.empty());
    EXPECT_TRUE(none.view().empty());
    EXPECT_EQ(none.str(), "");
    EXPECT_TRUE(from_empty.empty());
    EXPECT_TRUE(from_empty_text.view().empty());
    EXPECT_TRUE(none == from_empty_text);
    EXPECT_TRUE(none == std::string_view());
    EXPECT_EQ(none <=> PathRef("/x"), std::strong_ordering::less);
    EXPECT_EQ(PathRef::pooled(), before);
    std::ostringstream out;
    out << none << "|" << PathRef("/printed");
    EXPECT_EQ(out.str(), "|/printed");
}

TEST(PathRef, ThreadsSharingPathsLeaveThePoolAsTheyFoundIt) {
    // Several threads make, copy, assign and drop PathRefs of the same few paths at once; a
    // race in the counts would free a path still in use (TSan/ASan) or leave one in the pool.
    const std::vector<std::string> paths = {"/scale/race/a", "/scale/race/b", "/scale/race/c",
                                            "/scale/race/d"};
    const std::size_t before = PathRef::pooled();
    // Copied from every thread, which takes no pool lock.
    std::optional<PathRef> shared(PathRef("/scale/race/a"));
    constexpr int k_threads = 8;
    constexpr int k_rounds = 5000;
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            PathRef kept;
            for (int i = 0; i < k_rounds; ++i) {
                const std::string& text = paths[static_cast<std::size_t>(i + t) % paths.size()];
                PathRef made(text);
                PathRef copy = made;
                PathRef shared_copy = *shared;
                if (made.view() != text || copy.view() != text ||
                    shared_copy.view() != "/scale/race/a") {
                    ++wrong;
                }
                if (i % 3 == 0) {
                    kept = copy;
                } else if (i % 3 == 1) {
                    kept = std::move(made);
                } else {
                    kept = PathRef();
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(PathRef::pooled(), before + 1) << "only the path still held stays";
    EXPECT_EQ(shared->view(), "/scale/race/a");
    shared.reset();
    EXPECT_EQ(PathRef::pooled(), before);
}

// ---------------------------------------------------------------------------------------------
// The streaming pass

// Records what a streaming pass hands over, and whether it ever did so out of turn.
class RecordingSink final : public PassSink {
public:
    void on_tmux(const std::vector<TmuxServerReport>& servers) override {
        calls.push_back('t');
        seen_tmux = servers.at(0).facts;
        seen_servers = servers.size();
    }
    void on_lock(LockRecord&& record) override {
        if (m_busy.exchange(true)) {
            overlapped = true;
        }
        calls.push_back('l');
        locks.push_back(std::move(record));
        m_busy.store(false);
    }
    std::string calls; ///< 't' per on_tmux, 'l' per on_lock, in order
    TmuxFacts seen_tmux;
    std::size_t seen_servers = 0;
    std::vector<LockRecord> locks;
    bool overlapped = false;

private:
    std::atomic<bool> m_busy{false};
};

// The parts of a record the two runs must agree on.
using RecordKey = std::tuple<std::string, std::string, std::string, std::string, std::string>;

template <typename Records> std::set<RecordKey> record_set(const Records& records) {
    std::set<RecordKey> out;
    for (const auto& r : records) {
        out.emplace(r.lock_path, r.worker, std::string(to_string(r.judgement.verdict)),
                    std::string(to_string(r.action)), r.content);
    }
    return out;
}

using SummaryKey = std::tuple<std::string, std::string, std::string, std::int64_t, std::string>;

std::vector<SummaryKey> summary_list(const std::deque<LockSummary>& summaries) {
    std::vector<SummaryKey> out;
    for (const auto& s : summaries) {
        out.emplace_back(s.worker.str(), std::string(to_string(s.verdict)),
                         std::string(to_string(s.action)), s.pid, s.session_id);
    }
    return out;
}

using CollisionKey =
    std::tuple<std::string, std::vector<std::string>, std::int64_t, std::string, std::string>;

std::vector<CollisionKey> collision_list(const std::vector<Collision>& collisions) {
    std::vector<CollisionKey> out;
    for (const auto& c : collisions) {
        out.emplace_back(std::string(to_string(c.kind)), worker_names(c.workers), c.pid,
                         c.session_id, c.message);
    }
    return out;
}

std::set<std::string> kinds_of(const std::vector<Collision>& collisions) {
    std::set<std::string> out;
    for (const auto& c : collisions) {
        out.emplace(to_string(c.kind));
    }
    return out;
}

class StreamingPassTest : public ::testing::Test {
protected:
    std::string root() const { return m_dir.sub("root"); }
    std::string worker(const std::string& rel) const { return root() + "/" + rel; }
    std::string lock_of(const std::string& rel) const {
        return worker(rel) + "/.runtime/agent.lock";
    }
    void put(const std::string& rel, long long pid, const std::string& session = "") {
        test::write_file(lock_of(rel), test::go_lock_json(pid, test::now_rfc3339(), session,
                                                          test::local_hostname()));
    }
    // Live (twice with one PID), stale (two), invalid, held by a session, orphaned.
    void build_fleet() {
        put("rig/live", m_owner.pid());
        put("rig/twin", m_owner.pid());
        put("rig/stale", test::dead_pid());
        put("far/deep/down/stale", test::dead_pid());
        test::write_file(lock_of("rig/invalid"), "{not json");
        put("rig/held", test::dead_pid(), "held");
        put("rig/orphan", m_other.pid(), "no-such-session");
        test::make_dirs(worker("empty/dir"));
    }
    // The fleet, in a dry run, plus a root that does not exist (root_errors gets an entry).
    PassOptions fleet_and_missing_root() {
        build_fleet();
        PassOptions o = options(true);
        o.roots.push_back(m_dir.sub("missing-root"));
        return o;
    }

    PassOptions options(bool dry_run) const {
        PassOptions o;
        o.roots = {root()};
        o.dry_run = dry_run;
        return o;
    }
    PassReport plain(const PassOptions& o) {
        test::FakeTmuxProbe tmux;
        tmux.facts = test::tmux_ok({"held"});
        SystemProcessProbe processes;
        return run_pass(o, processes, tmux, read_host_facts());
    }
    PassReport streamed(const PassOptions& o, PassSink& sink) {
        test::FakeTmuxProbe tmux;
        tmux.facts = test::tmux_ok({"held"});
        SystemProcessProbe processes;
        return run_pass(o, processes, tmux, read_host_facts(), sink);
    }

    TempDir m_dir;
    Child m_owner = test::spawn_sleeper();
    Child m_other = test::spawn_sleeper();
};

TEST_F(StreamingPassTest, TheSinkGetsWhatThePlainPassKeeps) {
    build_fleet();
    const PassOptions o = options(true);
    const PassReport ref = plain(o);
    ASSERT_EQ(ref.locks.size(), 7u);

    RecordingSink sink;
    const PassReport got = streamed(o, sink);

    // tmux once, before every lock.
    ASSERT_FALSE(sink.calls.empty());
    EXPECT_EQ(sink.calls.front(), 't');
    EXPECT_EQ(std::count(sink.calls.begin(), sink.calls.end(), 't'), 1);
    EXPECT_EQ(sink.seen_servers, 1u);
    EXPECT_EQ(sink.seen_tmux.state, TmuxState::ok);
    EXPECT_EQ(sink.seen_tmux.session_names, got.tmux.session_names);
    EXPECT_FALSE(sink.overlapped);

    // The same records, handed over instead of kept.
    EXPECT_EQ(sink.locks.size(), ref.locks.size());
    EXPECT_EQ(record_set(sink.locks), record_set(ref.locks));
    EXPECT_TRUE(got.locks.empty());

    // Summaries, sorted by worker, alike in both.
    auto by_worker = [](const LockSummary& a, const LockSummary& b) { return a.worker < b.worker; };
    EXPECT_TRUE(std::is_sorted(got.summaries.begin(), got.summaries.end(), by_worker));
    EXPECT_TRUE(std::is_sorted(ref.summaries.begin(), ref.summaries.end(), by_worker));
    EXPECT_EQ(ref.summaries.size(), 7u);
    EXPECT_EQ(summary_list(got.summaries), summary_list(ref.summaries));

    // Stats and collisions alike too.
    EXPECT_EQ(got.stats.dirs, ref.stats.dirs);
    EXPECT_GT(got.stats.dirs, 7u);
    EXPECT_EQ(got.stats.locks, 7u);
    EXPECT_EQ(ref.stats.locks, 7u);
    EXPECT_EQ(got.stats.would_remove, 2u);
    EXPECT_EQ(ref.stats.would_remove, 2u);
    EXPECT_EQ(got.stats.removed, 0u);
    EXPECT_EQ(ref.stats.removed, 0u);
    EXPECT_EQ(got.stats.unreadable_dirs, ref.stats.unreadable_dirs);
    EXPECT_EQ(collision_list(got.collisions), collision_list(ref.collisions));
    EXPECT_EQ(kinds_of(ref.collisions),
              (std::set<std::string>{"stale", "orphaned", "duplicate-pid"}));

    // The dry run left every lock where it was.
    EXPECT_TRUE(test::exists(lock_of("rig/stale")));
    EXPECT_TRUE(test::exists(lock_of("far/deep/down/stale")));
}

TEST_F(StreamingPassTest, ParallelWalkStreamsOneLockAtATime) {
    build_fleet();
    for (int i = 0; i < 40; ++i) {
        put("many/w" + std::to_string(i), i % 2 == 0 ? test::dead_pid() : m_other.pid());
    }
    PassOptions o = options(true);
    const PassReport ref = plain(o);
    o.walk.threads = 4;
    RecordingSink sink;
    const PassReport got = streamed(o, sink);
    EXPECT_FALSE(sink.overlapped) << "on_lock was entered twice at once";
    EXPECT_EQ(sink.calls.front(), 't');
    EXPECT_EQ(std::count(sink.calls.begin(), sink.calls.end(), 't'), 1);
    EXPECT_EQ(record_set(sink.locks), record_set(ref.locks));
    EXPECT_EQ(summary_list(got.summaries), summary_list(ref.summaries));
    EXPECT_EQ(got.stats.locks, ref.stats.locks);
    EXPECT_EQ(got.stats.would_remove, ref.stats.would_remove);
    EXPECT_EQ(collision_list(got.collisions), collision_list(ref.collisions));
}

TEST_F(StreamingPassTest, AStreamingPassRemovesAndReportsTheRemovedContent) {
    build_fleet();
    const std::string stale_content = test::read_file(lock_of("rig/stale"));
    RecordingSink sink;
    const PassReport got = streamed(options(false), sink);
    EXPECT_FALSE(test::exists(lock_of("rig/stale")));
    EXPECT_FALSE(test::exists(lock_of("far/deep/down/stale")));
    EXPECT_TRUE(test::exists(lock_of("rig/live")));
    EXPECT_EQ(got.stats.removed, 2u);
    EXPECT_EQ(got.stats.would_remove, 0u);
    int removed = 0;
    for (const auto& r : sink.locks) {
        if (r.action == LockAction::removed) {
            ++removed;
            if (r.lock_path == lock_of("rig/stale")) {
                EXPECT_EQ(r.content, stale_content);
            }
        }
    }
    EXPECT_EQ(removed, 2);
    // Removed locks collide with nothing.
    for (const auto& c : got.collisions) {
        EXPECT_NE(c.kind, CollisionKind::stale) << c.message;
    }
    const LockSummary* s = find_summary(got.summaries, worker("rig/stale"));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->action, LockAction::removed);
}

TEST_F(StreamingPassTest, WithoutPerLockKindsOnlyDuplicateClaimsRemain) {
    build_fleet();
    PassOptions o = options(true);
    const PassReport all = plain(o);
    EXPECT_EQ(kinds_of(all.collisions),
              (std::set<std::string>{"stale", "orphaned", "duplicate-pid"}));

    o.per_lock_collisions = false;
    const PassReport dup_only = plain(o);
    RecordingSink sink;
    const PassReport dup_only_streamed = streamed(o, sink);
    for (const PassReport* r : {&dup_only, &dup_only_streamed}) {
        ASSERT_EQ(r->collisions.size(), 1u);
        const Collision& c = r->collisions[0];
        EXPECT_EQ(c.kind, CollisionKind::duplicate_pid);
        EXPECT_EQ(c.pid, m_owner.pid());
        EXPECT_EQ(worker_names(c.workers),
                  (std::vector<std::string>{worker("rig/live"), worker("rig/twin")}));
    }
    // The option changes the collisions only.
    EXPECT_EQ(summary_list(dup_only.summaries), summary_list(all.summaries));
    EXPECT_EQ(dup_only.stats.would_remove, all.stats.would_remove);
}

LockRecord record(const std::string& worker, std::optional<std::int64_t> pid,
                  const std::string& session, Verdict verdict, LockAction action) {
    LockRecord r;
    r.worker = worker;
    r.lock_path = worker + "/.runtime/agent.lock";
    if (pid) {
        LockInfo info;
        info.pid = *pid;
        info.session_id = session;
        r.info = info;
        r.process.state = ProcessState::alive;
        r.process.start_ticks = static_cast<std::uint64_t>(*pid) * 10;
    }
    r.judgement.verdict = verdict;
    r.action = action;
    return r;
}

TEST(Summaries, SummarizeLocksSortsByWorkerAndKeepsTheClaim) {
    PassReport report;
    report.locks.push_back(record("/r/c", 30, "s3", Verdict::orphaned, LockAction::kept));
    report.locks.push_back(record("/r/a", 10, "", Verdict::stale, LockAction::removed));
    report.locks.push_back(record("/r/b", std::nullopt, "", Verdict::invalid, LockAction::kept));
    report.locks.push_back(record("/r/ab", 40, "s4", Verdict::live, LockAction::kept));
    report.summaries.push_back(
        summarize(record("/r/old", 1, "", Verdict::live, LockAction::kept), TmuxState::ok));
    summarize_locks(report);

    ASSERT_EQ(report.summaries.size(), 4u) << "replaces what was there";
    std::vector<std::string> workers;
    for (const auto& s : report.summaries) {
        workers.push_back(s.worker.str());
    }
    EXPECT_EQ(workers, (std::vector<std::string>{"/r/a", "/r/ab", "/r/b", "/r/c"}));

    const LockSummary& c = report.summaries[3];
    EXPECT_TRUE(c.parsed);
    EXPECT_EQ(c.pid, 30);
    EXPECT_EQ(c.session_id, "s3");
    EXPECT_EQ(c.verdict, Verdict::orphaned);
    EXPECT_EQ(c.action, LockAction::kept);
    EXPECT_EQ(c.owner, ProcessState::alive);
    EXPECT_EQ(c.start_ticks, std::optional<std::uint64_t>(300));

    const LockSummary& b = report.summaries[2];
    EXPECT_FALSE(b.parsed);
    EXPECT_EQ(b.pid, 0);
    EXPECT_EQ(b.session_id, "");
    EXPECT_EQ(b.verdict, Verdict::invalid);

    EXPECT_EQ(report.summaries[0].action, LockAction::removed);
    EXPECT_EQ(report.summaries[0], summarize(report.locks[1], report.tmux.state));
}

TEST(Summaries, FindSummaryFindsExactWorkersOnly) {
    std::deque<LockSummary> none;
    EXPECT_EQ(find_summary(none, "/r/a"), nullptr);

    PassReport report;
    for (const char* w : {"/r/b", "/r/a/x", "/r/a", "/r/ab", "/r/c"}) {
        report.locks.push_back(record(w, 7, "", Verdict::live, LockAction::kept));
    }
    summarize_locks(report);
    for (const char* w : {"/r/a", "/r/a/x", "/r/ab", "/r/b", "/r/c"}) {
        const LockSummary* s = find_summary(report.summaries, w);
        ASSERT_NE(s, nullptr) << w;
        EXPECT_EQ(s->worker.view(), w);
    }
    for (const char* w : {"/r", "/r/", "/r/a/", "/r/aa", "/r/d", "/", ""}) {
        EXPECT_EQ(find_summary(report.summaries, w), nullptr) << w;
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON report

json::object parse_object(const std::string& text) {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    EXPECT_FALSE(ec) << ec.message() << "\n" << text;
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << text;
        return {};
    }
    return v.as_object();
}

// The locks of a document by lock_path. Without their process start_time: the probe derives it
// from the boot time (realtime - boottime, read anew each time), which can move by a few
// nanoseconds between two probes of the same process.
std::map<std::string, json::value> locks_by_path(const json::object& doc) {
    std::map<std::string, json::value> out;
    const json::value* locks = doc.if_contains("locks");
    if (locks == nullptr || !locks->is_array()) {
        ADD_FAILURE() << "no locks array";
        return out;
    }
    for (const auto& l : locks->as_array()) {
        json::object lock = l.as_object();
        const std::string path(lock.at("lock_path").as_string());
        if (auto* process = lock.if_contains("process"); process != nullptr) {
            EXPECT_TRUE(process->as_object().contains("state")) << path;
            process->as_object().erase("start_time");
        }
        EXPECT_TRUE(out.emplace(path, std::move(lock)).second) << "twice: " << path;
    }
    return out;
}

TEST_F(StreamingPassTest, TheReportDocumentHasEveryPart) {
    const PassOptions o = fleet_and_missing_root();
    const PassReport ref = plain(o);
    const json::object doc = parse_object(report_to_json(ref));
    for (const char* key :
         {"tmux", "locks", "roots", "root_errors", "collisions", "walk_errors", "stats"}) {
        EXPECT_TRUE(doc.contains(key)) << key;
    }
    ASSERT_TRUE(doc.contains("stats"));
    const json::object& stats = doc.at("stats").as_object();
    for (const char* key : {"dirs", "locks", "removed", "would_remove"}) {
        EXPECT_TRUE(stats.contains(key)) << key;
    }
    EXPECT_EQ(stats.at("would_remove").to_number<std::uint64_t>(), 2u);
    EXPECT_EQ(stats.at("locks").to_number<std::uint64_t>(), 7u);
    EXPECT_EQ(doc.at("tmux").as_object().at("state").as_string(), "ok");
    EXPECT_EQ(doc.at("locks").as_array().size(), 7u);
    EXPECT_EQ(doc.at("roots").as_array().size(), 2u);
    ASSERT_EQ(doc.at("root_errors").as_array().size(), 1u);
    EXPECT_EQ(doc.at("root_errors").as_array()[0].as_object().at("root").as_string(),
              m_dir.sub("missing-root"));
    EXPECT_EQ(doc.at("collisions").as_array().size(), ref.collisions.size());
    const auto locks = locks_by_path(doc);
    ASSERT_TRUE(locks.count(lock_of("rig/stale")));
    EXPECT_EQ(locks.at(lock_of("rig/stale")).as_object().at("action").as_string(), "would-remove");
    EXPECT_TRUE(locks.at(lock_of("rig/invalid")).as_object().at("pid").is_null());
}

TEST_F(StreamingPassTest, TheStreamedDocumentEqualsTheWholeReportsDocument) {
    const PassOptions o = fleet_and_missing_root();
    const PassReport ref = plain(o);
    const json::object want = parse_object(report_to_json(ref));

    std::ostringstream out;
    JsonReportWriter writer(out);
    const PassReport got_report = streamed(o, writer);
    writer.finish(got_report);
    const json::object got = parse_object(out.str());

    EXPECT_EQ(got.size(), want.size());
    for (const char* key : {"tmux", "roots", "root_errors", "collisions", "walk_errors"}) {
        ASSERT_TRUE(got.contains(key)) << key;
        EXPECT_EQ(got.at(key), want.at(key)) << key;
    }
    json::object got_stats = got.at("stats").as_object();
    json::object want_stats = want.at("stats").as_object();
    got_stats.erase("elapsed_ms"); // the only part that may differ between two passes
    want_stats.erase("elapsed_ms");
    EXPECT_EQ(got_stats, want_stats);
    EXPECT_EQ(locks_by_path(got), locks_by_path(want));
    EXPECT_EQ(locks_by_path(got).size(), 7u);
}

TEST_F(StreamingPassTest, AStreamedDocumentWithoutLocksParses) {
    test::make_dirs(worker("nothing/here"));
    std::ostringstream out;
    JsonReportWriter writer(out);
    const PassReport report = streamed(options(false), writer);
    writer.finish(report);
    const json::object doc = parse_object(out.str());
    ASSERT_TRUE(doc.contains("locks"));
    EXPECT_TRUE(doc.at("locks").as_array().empty());
    EXPECT_EQ(doc, parse_object(report_to_json(report)));
}

// ---------------------------------------------------------------------------------------------
// FindingTracker: streaming rounds and scoped updates

Finding lock_found(const std::string& event, const std::string& lock_path,
                   const std::string& fingerprint = "content") {
    Finding f;
    f.event = event;
    f.key = lock_path;
    f.fingerprint = fingerprint;
    f.paths = {lock_path};
    f.fields = {{"lock_path", lock_path}, {"fingerprint", fingerprint}};
    return f;
}

Finding collision_found(const std::string& event, const std::vector<std::string>& workers,
                        const std::string& message = "collides") {
    Finding f;
    f.event = event;
    for (const auto& w : workers) {
        f.key += (f.key.empty() ? "" : "\n") + w;
    }
    f.fingerprint = message;
    f.paths = workers;
    f.fields = {{"message", message}};
    f.resolve_fields = {{"workers", f.key}, {"worker_count", std::to_string(workers.size())}};
    return f;
}

Finding root_found(const std::string& root) {
    Finding f;
    f.event = "root.unavailable";
    f.resolved_event = "root.recovered";
    f.key = root;
    f.fingerprint = "gone";
    f.fields = {{"root", root}, {"error", "gone"}};
    f.resolve_fields = {{"root", root}};
    return f;
}

// What a change says, in a form gtest can compare and print.
using ChangeKey = std::tuple<std::string, std::string, std::string, std::vector<std::string>,
                             FindingFields, std::string>;

std::vector<ChangeKey> change_list(const std::vector<FindingChange>& changes) {
    std::vector<ChangeKey> out;
    for (const auto& c : changes) {
        out.emplace_back(std::string(to_string(c.state)), c.finding.event, c.finding.key,
                         c.finding.paths, c.finding.fields, c.event());
    }
    return out;
}

TEST(FindingStream, AppearedThenQuietThenChanged) {
    FindingTracker t;
    const Finding f = lock_found("lock.orphaned", "/r/a/.runtime/agent.lock", "one");
    t.begin();
    EXPECT_EQ(t.observe(f), FindingState::appeared);
    EXPECT_TRUE(t.sweep({}).empty());
    EXPECT_EQ(t.open_count(), 1u);

    t.begin();
    EXPECT_FALSE(t.observe(f).has_value()) << "same fingerprint: nothing new to say";
    EXPECT_TRUE(t.sweep({}).empty());

    t.begin();
    EXPECT_EQ(t.observe(lock_found("lock.orphaned", "/r/a/.runtime/agent.lock", "two")),
              FindingState::changed);
    EXPECT_TRUE(t.sweep({}).empty());
    EXPECT_EQ(t.open_count(), 1u);

    // The same key under another event is another finding.
    t.begin();
    EXPECT_FALSE(
        t.observe(lock_found("lock.orphaned", "/r/a/.runtime/agent.lock", "two")).has_value());
    EXPECT_EQ(t.observe(lock_found("lock.invalid", "/r/a/.runtime/agent.lock", "two")),
              FindingState::appeared);
    EXPECT_TRUE(t.sweep({}).empty());
    EXPECT_EQ(t.open_count(), 2u);
}

TEST(FindingStream, ASecondObserveInOneRoundIsIgnored) {
    FindingTracker t;
    const std::string key = "/r/a/.runtime/agent.lock";
    t.begin();
    EXPECT_EQ(t.observe(lock_found("lock.unknown", key, "first")), FindingState::appeared);
    EXPECT_FALSE(t.observe(lock_found("lock.unknown", key, "first")).has_value());
    EXPECT_FALSE(t.observe(lock_found("lock.unknown", key, "second")).has_value());
    EXPECT_TRUE(t.sweep({}).empty());

    // The first one won: its fingerprint is the one remembered.
    t.begin();
    EXPECT_FALSE(t.observe(lock_found("lock.unknown", key, "first")).has_value());
    EXPECT_FALSE(t.observe(lock_found("lock.unknown", key, "second")).has_value());
    EXPECT_TRUE(t.sweep({}).empty());
    t.begin();
    EXPECT_EQ(t.observe(lock_found("lock.unknown", key, "second")), FindingState::changed);
    EXPECT_FALSE(t.observe(lock_found("lock.unknown", key, "third")).has_value());
    EXPECT_TRUE(t.sweep({}).empty());
    EXPECT_EQ(t.open_count(), 1u);
}

TEST(FindingStream, SweepResolvesWhatTheRoundDidNotSee) {
    FindingTracker t;
    const Finding root = root_found("/srv/down");
    const Finding lock = lock_found("lock.invalid", "/r/b/.runtime/agent.lock");
    const Finding pid =
        collision_found("collision.duplicate_pid", {"/r/x", "/r/y"}, "live PID 5 holds 2");
    t.begin();
    EXPECT_EQ(t.observe(root), FindingState::appeared);
    EXPECT_EQ(t.observe(lock), FindingState::appeared);
    EXPECT_EQ(t.observe(pid), FindingState::appeared);
    EXPECT_TRUE(t.sweep({}).empty());

    t.begin();
    EXPECT_FALSE(t.observe(lock).has_value());
    auto changes = t.sweep({});
    ASSERT_EQ(changes.size(), 2u);
    // (event, key) order: collision.duplicate_pid before root.unavailable.
    EXPECT_EQ(changes[0].state, FindingState::resolved);
    EXPECT_EQ(changes[0].finding.event, "collision.duplicate_pid");
    EXPECT_EQ(changes[0].event(), "collision.duplicate_pid") << "no resolved_event: same name";
    EXPECT_EQ(changes[0].finding.key, "/r/x\n/r/y");
    EXPECT_EQ(changes[0].finding.paths, (std::vector<std::string>{"/r/x", "/r/y"}));
    EXPECT_EQ(changes[0].finding.fields, pid.resolve_fields);

    EXPECT_EQ(changes[1].state, FindingState::resolved);
    EXPECT_EQ(changes[1].finding.event, "root.unavailable");
    EXPECT_EQ(changes[1].finding.resolved_event, "root.recovered");
    EXPECT_EQ(changes[1].event(), "root.recovered");
    EXPECT_EQ(changes[1].finding.key, "/srv/down");
    EXPECT_EQ(changes[1].finding.fields, root.resolve_fields);
    EXPECT_EQ(t.open_count(), 1u);

    // Resolved findings are gone: seen again, they appear again.
    t.begin();
    EXPECT_EQ(t.observe(root), FindingState::appeared);
    const auto last = t.sweep({});
    ASSERT_EQ(last.size(), 1u);
    EXPECT_EQ(last[0].finding.key, lock.key);
    EXPECT_EQ(last[0].event(), "lock.invalid");
    EXPECT_EQ(last[0].finding.paths, lock.paths);
    EXPECT_EQ(t.open_count(), 1u);
}

TEST(FindingStream, ResolveFieldsAreTheLastSeen) {
    FindingTracker t;
    Finding f = root_found("/srv/a");
    t.begin();
    t.observe(f);
    t.sweep({});
    f.resolve_fields = {{"root", "/srv/a"}, {"seen", "again"}};
    t.begin();
    EXPECT_FALSE(t.observe(f).has_value());
    t.sweep({});
    t.begin();
    const auto changes = t.sweep({});
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].finding.fields, f.resolve_fields);
}

TEST(FindingStream, KeysComeBackAsTheyWereAndInOrder) {
    // Lock paths, their look-alikes and plain paths, under two events: each resolves with the
    // very key and paths it had, in (event, key) order as std::string orders them.
    const std::vector<std::string> keys = {"/r/a/.runtime/agent.lock",
                                           "/r/a/.runtime/agent.lock.old",
                                           "/r/a/.runtime/agent.loc",
                                           "/r/a/.runtime",
                                           "/r/a",
                                           "/r/a/",
                                           "/r/a/b/.runtime/agent.lock",
                                           "/r/a-b/.runtime/agent.lock",
                                           "/r/ab/.runtime/agent.lock",
                                           "/r/a/.runtime/agent.lock/x",
                                           "/.runtime/agent.lock",
                                           "/r/\xc3\xa9/.runtime/agent.lock",
                                           "/r/z/.runtime/agent.lock"};
    std::vector<std::pair<std::string, std::string>> want;
    FindingTracker t;
    t.begin();
    for (const char* event : {"lock.orphaned", "lock.invalid"}) {
        for (const auto& k : keys) {
            EXPECT_EQ(t.observe(lock_found(event, k)), FindingState::appeared) << k;
            want.emplace_back(event, k);
        }
    }
    EXPECT_TRUE(t.sweep({}).empty());
    EXPECT_EQ(t.open_count(), want.size());

    // Seen again, each is the same finding.
    t.begin();
    for (const auto& [event, k] : want) {
        EXPECT_FALSE(t.observe(lock_found(event, k)).has_value()) << event << " " << k;
    }
    EXPECT_TRUE(t.sweep({}).empty());

    t.begin();
    const auto changes = t.sweep({});
    std::sort(want.begin(), want.end());
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto& c : changes) {
        got.emplace_back(c.finding.event, c.finding.key);
        EXPECT_EQ(c.finding.paths, std::vector<std::string>{c.finding.key});
    }
    EXPECT_EQ(got, want);
    EXPECT_EQ(t.open_count(), 0u);
}

TEST(FindingStream, FrozenRootsKeepTheFindingsUnderThem) {
    FindingTracker t;
    const Finding in_frozen = lock_found("lock.orphaned", "/r1/w/.runtime/agent.lock");
    const Finding elsewhere = lock_found("lock.orphaned", "/r2/w/.runtime/agent.lock");
    const Finding lookalike = lock_found("lock.orphaned", "/r1x/w/.runtime/agent.lock");
    const Finding straddling = collision_found("collision.duplicate_session", {"/r1/w", "/r2/w"});
    const Finding outside = collision_found("collision.duplicate_pid", {"/r2/v", "/r2/w"});
    const Finding no_paths = root_found("/r3");
    t.begin();
    for (const Finding* f :
         {&in_frozen, &elsewhere, &lookalike, &straddling, &outside, &no_paths}) {
        EXPECT_EQ(t.observe(*f), FindingState::appeared) << f->key;
    }
    EXPECT_TRUE(t.sweep({}).empty());

    t.begin();
    const auto changes = t.sweep({"/r1"});
    std::set<std::string> resolved;
    for (const auto& c : changes) {
        EXPECT_EQ(c.state, FindingState::resolved);
        resolved.insert(c.finding.key);
    }
    EXPECT_EQ(resolved,
              (std::set<std::string>{elsewhere.key, lookalike.key, outside.key, no_paths.key}));
    EXPECT_EQ(t.open_count(), 2u);

    // Once the root is back and they are gone, they resolve with their paths.
    t.begin();
    const auto later = t.sweep({});
    ASSERT_EQ(later.size(), 2u);
    EXPECT_EQ(later[0].finding.event, "collision.duplicate_session");
    EXPECT_EQ(later[0].finding.key, "/r1/w\n/r2/w");
    EXPECT_EQ(later[0].finding.paths, (std::vector<std::string>{"/r1/w", "/r2/w"}));
    EXPECT_EQ(later[0].finding.fields, straddling.resolve_fields);
    EXPECT_EQ(later[1].finding.key, in_frozen.key);
    EXPECT_EQ(t.open_count(), 0u);
}

// The open findings of a fleet: lock events keyed by plain paths and by lock paths, two
// collisions, a root.
std::vector<Finding> fleet_findings() {
    return {lock_found("lock.orphaned", "/r/a"),
            lock_found("lock.orphaned", "/r/a/.runtime/agent.lock"),
            lock_found("lock.invalid", "/r/a/.runtime/agent.lock"),
            lock_found("lock.invalid", "/r/a/b/.runtime/agent.lock"),
            lock_found("lock.orphaned", "/r/b"),
            lock_found("lock.invalid", "/r/a"),
            lock_found("lock.invalid", "/r/c"),
            lock_found("lock.would_remove", "/r/b"),
            collision_found("collision.duplicate_pid", {"/r/a", "/r/b"}),
            collision_found("collision.duplicate_session", {"/r/c", "/r/d"}),
            root_found("/srv/r2")};
}

struct ScopeCase {
    const char* name;
    std::vector<Finding> current;
    std::string prefix;
    std::optional<std::string> key;
    std::vector<std::string> frozen;
    std::size_t changes = 0;     ///< how many transitions it makes
    std::vector<ChangeKey> want; ///< checked when not empty
};

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

TEST(FindingScope, UpdateScopeMatchesUpdateSome) {
    const std::vector<ScopeCase> cases = {
        // One lock re-checked: its other event resolves, the changed one is logged again.
        {"lock key",
         {lock_found("lock.orphaned", "/r/a", "new content")},
         "lock.",
         "/r/a",
         {},
         2,
         {ChangeKey{"resolved", "lock.invalid", "/r/a", {"/r/a"}, {}, "lock.invalid"},
          ChangeKey{"changed",
                    "lock.orphaned",
                    "/r/a",
                    {"/r/a"},
                    {{"lock_path", "/r/a"}, {"fingerprint", "new content"}},
                    "lock.orphaned"}}},
        // The lock is gone: both its findings resolve, nothing else.
        {"lock key gone", {}, "lock.", "/r/b", {}, 2, {}},
        // A lock that had no finding now has one.
        {"lock key new", {lock_found("lock.foreign", "/r/e")}, "lock.", "/r/e", {}, 1, {}},
        // Keyed by its lock path: the lock's own findings only, not those of /r/a/b.
        {"lock path gone", {}, "lock.", "/r/a/.runtime/agent.lock", {}, 2, {}},
        {"lock path changed",
         {lock_found("lock.invalid", "/r/a/.runtime/agent.lock", "other")},
         "lock.",
         "/r/a/.runtime/agent.lock",
         {},
         2,
         {ChangeKey{"resolved",
                    "lock.orphaned",
                    "/r/a/.runtime/agent.lock",
                    {"/r/a/.runtime/agent.lock"},
                    {},
                    "lock.orphaned"},
          ChangeKey{"changed",
                    "lock.invalid",
                    "/r/a/.runtime/agent.lock",
                    {"/r/a/.runtime/agent.lock"},
                    {{"lock_path", "/r/a/.runtime/agent.lock"}, {"fingerprint", "other"}},
                    "lock.invalid"}}},
        {"lock path frozen", {}, "lock.", "/r/a/.runtime/agent.lock", {"/r/a"}, 0, {}},
        // Every lock finding at once.
        {"all locks", {}, "lock.", std::nullopt, {}, 8, {}},
        // Under a frozen root nothing of the lock resolves.
        {"lock key frozen", {}, "lock.", "/r/a", {"/r"}, 0, {}},
        // Collisions re-detected: one stays, the other went away.
        {"collisions",
         {collision_found("collision.duplicate_pid", {"/r/a", "/r/b"})},
         "collision.",
         std::nullopt,
         {},
         1,
         {ChangeKey{"resolved",
                    "collision.duplicate_session",
                    "/r/c\n/r/d",
                    {"/r/c", "/r/d"},
                    {{"workers", "/r/c\n/r/d"}, {"worker_count", "2"}},
                    "collision.duplicate_session"}}},
        // A collision with a worker under a frozen root is kept; the other resolves.
        {"collisions frozen", {}, "collision.", std::nullopt, {"/r/d"}, 1, {}},
        // A collision that changed its workers: a new key appears, the old ones resolve.
        {"collisions moved",
         {collision_found("collision.duplicate_pid", {"/r/a", "/r/b", "/r/e"})},
         "collision.",
         std::nullopt,
         {},
         3,
         {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        FindingTracker scoped;
        FindingTracker some;
        ASSERT_EQ(scoped.update(fleet_findings()).size(), 11u);
        ASSERT_EQ(some.update(fleet_findings()).size(), 11u);

        std::optional<std::string_view> key;
        if (c.key) {
            key = *c.key;
        }
        const auto got = change_list(scoped.update_scope(c.current, c.prefix, key, c.frozen));
        const std::function<bool(const Finding&)> in_scope = [&c](const Finding& f) {
            return starts_with(f.event, c.prefix) && (!c.key || f.key == *c.key);
        };
        const auto want = change_list(some.update_some(c.current, in_scope, c.frozen));
        EXPECT_EQ(got, want);
        EXPECT_EQ(got.size(), c.changes);
        if (!c.want.empty()) {
            EXPECT_EQ(got, c.want);
        }
        for (const auto& change : got) {
            // Nothing outside the scope is touched.
            EXPECT_TRUE(starts_with(std::get<1>(change), c.prefix)) << std::get<1>(change);
            if (c.key) {
                EXPECT_EQ(std::get<2>(change), *c.key);
            }
        }
        EXPECT_EQ(scoped.open_count(), some.open_count());
        // What is left open is the same too: a full update with nothing resolves all of it.
        EXPECT_EQ(change_list(scoped.update({})), change_list(some.update({})));
    }
}

TEST(FindingScope, ScopedUpdatesLeaveEverythingElseOpen) {
    FindingTracker t;
    t.update(fleet_findings());
    // The lock /r/b is gone: its two findings resolve, the collision naming it stays open.
    auto changes = t.update_scope({}, "lock.", std::string_view("/r/b"));
    std::set<std::pair<std::string, std::string>> resolved;
    for (const auto& c : changes) {
        EXPECT_EQ(c.state, FindingState::resolved);
        resolved.emplace(c.finding.event, c.finding.key);
    }
    EXPECT_EQ(resolved, (std::set<std::pair<std::string, std::string>>{
                            {"lock.orphaned", "/r/b"}, {"lock.would_remove", "/r/b"}}));
    EXPECT_EQ(t.open_count(), 9u);

    // No collisions any more: both resolve, the locks and the root stay.
    changes = t.update_scope({}, "collision.", std::nullopt);
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_EQ(changes[0].finding.event, "collision.duplicate_pid");
    EXPECT_EQ(changes[1].finding.event, "collision.duplicate_session");
    EXPECT_EQ(t.open_count(), 7u);

    // A full update that sees the rest unchanged says nothing.
    std::vector<Finding> rest;
    for (auto& f : fleet_findings()) {
        if (f.event.starts_with("lock.") ? f.key != "/r/b" : f.event == "root.unavailable") {
            rest.push_back(std::move(f));
        }
    }
    EXPECT_TRUE(t.update(rest).empty());
}

// ---------------------------------------------------------------------------------------------
// Collision messages at scale

std::vector<std::string> numbered_workers(std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back("/r/w" + std::string(i < 10 ? "0" : "") + std::to_string(i));
    }
    return out;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
        ++n;
    }
    return n;
}

std::vector<PathRef> pooled(const std::vector<std::string>& names) {
    return {names.begin(), names.end()};
}

TEST(CollisionMessages, ListWorkersCutsAfterTheLimit) {
    EXPECT_EQ(list_workers({}, ", "), "");
    EXPECT_EQ(list_workers({PathRef("/r/a")}, ", "), "/r/a");
    EXPECT_EQ(list_workers({PathRef("/r/a"), PathRef("/r/b")}, ","), "/r/a,/r/b");

    const auto exactly = pooled(numbered_workers(k_collision_message_workers));
    const std::string all = list_workers(exactly, ", ");
    EXPECT_EQ(all.find("more"), std::string::npos) << all;
    EXPECT_EQ(occurrences(all, "/r/w"), k_collision_message_workers);

    const auto one_over = pooled(numbered_workers(k_collision_message_workers + 1));
    EXPECT_EQ(list_workers(one_over, ", "), all + ", ... and 1 more");

    const auto many = pooled(numbered_workers(k_collision_message_workers + 22));
    EXPECT_EQ(list_workers(many, "\n"), list_workers(exactly, "\n") + "\n... and 22 more");
}

TEST(CollisionMessages, ADuplicatePidOfTwentyFiveWorkersNamesTwenty) {
    const auto workers = numbered_workers(25);
    std::vector<JudgedLock> locks;
    // Given in reverse: the collision sorts its workers.
    for (auto it = workers.rbegin(); it != workers.rend(); ++it) {
        locks.push_back({*it, 4242, "", Verdict::live});
    }
    const auto collisions = detect_collisions(locks);
    ASSERT_EQ(collisions.size(), 1u);
    const Collision& c = collisions[0];
    EXPECT_EQ(c.kind, CollisionKind::duplicate_pid);
    EXPECT_EQ(c.pid, 4242);
    EXPECT_EQ(worker_names(c.workers), workers) << "the list itself is complete";
    EXPECT_EQ(occurrences(c.message, "/r/w"), 20u) << c.message;
    EXPECT_NE(c.message.find("/r/w19"), std::string::npos) << c.message;
    EXPECT_EQ(c.message.find("/r/w20"), std::string::npos) << c.message;
    EXPECT_NE(c.message.find("25 workers"), std::string::npos) << c.message;
    EXPECT_TRUE(c.message.ends_with(", ... and 5 more")) << c.message;
}

TEST(CollisionMessages, ADuplicateSessionOfManyWorkersIsCutToo) {
    const auto workers = numbered_workers(23);
    std::vector<JudgedLock> locks;
    for (std::size_t i = 0; i < workers.size(); ++i) {
        locks.push_back(
            {workers[i], static_cast<std::int64_t>(100 + i), "shared", Verdict::held_by_session});
    }
    const auto collisions = detect_collisions(locks);
    ASSERT_EQ(collisions.size(), 1u);
    EXPECT_EQ(collisions[0].kind, CollisionKind::duplicate_session);
    EXPECT_EQ(collisions[0].workers.size(), 23u);
    EXPECT_EQ(occurrences(collisions[0].message, "/r/w"), 20u);
    EXPECT_TRUE(collisions[0].message.ends_with(", ... and 3 more")) << collisions[0].message;
}

} // namespace
} // namespace agentlock
