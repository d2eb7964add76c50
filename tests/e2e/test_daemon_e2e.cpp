// End-to-end tests of the real agentlockd binary: temp worker roots, a real tmux server on a
// private socket, real child processes, its JSON logs and its sd_notify messages.

#include "daemon_fixture.hpp"
#include "e2e_support.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace agentlock::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::Child;
using test::dead_pid;
using test::exists;
using test::go_lock_json;
using test::local_hostname;
using test::make_dirs;
using test::spawn_sleeper;
using test::write_file;

// ---------------------------------------------------------------------------------------------
// Small JSON helpers

// A log field holding an integer: log values may be JSON numbers or decimal strings.
std::optional<long long> log_int(const LogEvent& ev, std::string_view key) {
    if (auto n = int_of(ev.fields, key)) {
        return n;
    }
    auto text = ev.str(key);
    if (!text || text->empty()) {
        return std::nullopt;
    }
    try {
        std::size_t used = 0;
        long long n = std::stoll(*text, &used);
        return used == text->size() ? std::optional<long long>(n) : std::nullopt;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// Parses logfmt `key=value key="quoted \"value\""` pairs (escapes \" \\ \n \r \t \xNN);
// nullopt when the text is not well-formed logfmt.
std::optional<std::map<std::string, std::string>> parse_logfmt(std::string_view text) {
    std::map<std::string, std::string> out;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == ' ') {
            ++i;
            continue;
        }
        std::size_t eq = text.find('=', i);
        if (eq == std::string_view::npos || eq == i) {
            return std::nullopt;
        }
        std::string key(text.substr(i, eq - i));
        if (key.find_first_of(" \"") != std::string::npos) {
            return std::nullopt;
        }
        i = eq + 1;
        std::string value;
        if (i < text.size() && text[i] == '"') {
            ++i;
            bool closed = false;
            while (i < text.size()) {
                char c = text[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c != '\\') {
                    value += c;
                    continue;
                }
                if (i >= text.size()) {
                    return std::nullopt;
                }
                char e = text[i++];
                switch (e) {
                case 'n':
                    value += '\n';
                    break;
                case 'r':
                    value += '\r';
                    break;
                case 't':
                    value += '\t';
                    break;
                case 'x':
                    if (i + 2 > text.size()) {
                        return std::nullopt;
                    }
                    value +=
                        static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16));
                    i += 2;
                    break;
                default:
                    value += e;
                }
            }
            if (!closed) {
                return std::nullopt;
            }
        } else {
            std::size_t end = text.find(' ', i);
            if (end == std::string_view::npos) {
                end = text.size();
            }
            value = std::string(text.substr(i, end - i));
            if (value.find('"') != std::string::npos) {
                return std::nullopt;
            }
            i = end;
        }
        out[key] = value;
    }
    return out;
}

// Collisions of one kind in a --once --json report.
std::vector<json::object> collisions_of(const json::object& doc, std::string_view kind) {
    std::vector<json::object> out;
    const json::value* cs = member(doc, "collisions");
    if (cs == nullptr || !cs->is_array()) {
        return out;
    }
    for (const auto& c : cs->as_array()) {
        if (c.is_object() && str_or(c.as_object(), "kind") == kind) {
            out.push_back(c.as_object());
        }
    }
    return out;
}

std::vector<std::string> string_array(const json::object& o, std::string_view key) {
    std::vector<std::string> out;
    const json::value* v = member(o, key);
    if (v != nullptr && v->is_array()) {
        for (const auto& e : v->as_array()) {
            if (e.is_string()) {
                out.emplace_back(e.as_string());
            }
        }
    }
    return out;
}

// True when some string field of the event (at any depth) equals or contains `needle`.
bool mentions(const json::value& v, std::string_view needle) {
    if (v.is_string()) {
        return std::string_view(v.as_string()).find(needle) != std::string_view::npos;
    }
    if (v.is_object()) {
        for (const auto& kv : v.as_object()) {
            if (mentions(kv.value(), needle)) {
                return true;
            }
        }
    }
    if (v.is_array()) {
        for (const auto& e : v.as_array()) {
            if (mentions(e, needle)) {
                return true;
            }
        }
    }
    return false;
}

bool mentions(const LogEvent& ev, std::string_view needle) {
    return mentions(json::value(ev.fields), needle);
}

// ---------------------------------------------------------------------------------------------
// Fixture: DaemonFixture's temp root, tmux server and daemon, with the daemon's usual flags and
// --once runs.

class E2E : public DaemonFixture {
protected:
    // Adds --config with an empty file unless `args` names one, so that an installed
    // /etc/agentlockd/agentlockd.json never leaks into a test.
    std::vector<std::string> isolated(std::vector<std::string> args) const {
        for (const auto& a : args) {
            if (a == "--config" || a.rfind("--config=", 0) == 0) {
                return args;
            }
        }
        args.insert(args.end(), {"--config", m_config});
        return args;
    }

    // Runs agentlockd to completion with isolated(args).
    RunResult run(const std::vector<std::string>& args) {
        return run_daemon(m_dir, isolated(args));
    }

    std::vector<std::string> tmux_args() const { return {"--tmux-socket", m_tmux.socket_name()}; }

    // The usual daemon flags: our root, our tmux server, JSON logs at debug level, short interval.
    std::vector<std::string> daemon_args(const std::string& interval = "200ms") const {
        return {"--root", m_root,        "--tmux-socket", m_tmux.socket_name(), "--log-format",
                "json",   "--log-level", "debug",         "--interval",         interval};
    }

    // Starts the daemon with NOTIFY_SOCKET pointing at our receiver.
    DaemonProcess& start(const std::vector<std::string>& args,
                         std::optional<long long> watchdog_usec = std::nullopt) {
        DaemonSpec spec;
        spec.args = isolated(args);
        spec.watchdog_usec = watchdog_usec;
        return start_daemon(std::move(spec));
    }

    // Starts the daemon and waits for READY=1.
    DaemonProcess& start_ready(const std::vector<std::string>& args,
                               std::optional<long long> watchdog_usec = std::nullopt) {
        DaemonProcess& d = start(args, watchdog_usec);
        wait_ready(d);
        return d;
    }

    // Runs `agentlockd --once --json` with our root and tmux server plus `extra`; returns the
    // document (fails the test when it does not parse or the exit code is not 0).
    json::object once_json(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{"--once", "--json", "--root", m_root};
        bool has_tmux = false;
        for (const auto& a : extra) {
            has_tmux = has_tmux || a == "--tmux-socket" || a == "--tmux-socket-path";
        }
        if (!has_tmux) {
            args.insert(args.end(), {"--tmux-socket", m_tmux.socket_name()});
        }
        args.insert(args.end(), extra.begin(), extra.end());
        RunResult r = run(args);
        EXPECT_FALSE(r.timed_out) << "agentlockd --once did not finish";
        EXPECT_TRUE(r.status.exited && r.status.code == 0)
            << "agentlockd --once: " << r.status.describe() << "\nstderr:\n"
            << r.err;
        std::string error;
        auto v = parse_json(r.out, &error);
        EXPECT_TRUE(v.has_value() && v->is_object())
            << "stdout is not one JSON object (" << error << "):\n"
            << r.out << "\nstderr:\n"
            << r.err;
        m_last_once_stderr = r.err;
        return (v && v->is_object()) ? v->as_object() : json::object{};
    }

    // A config file in our temp dir; returns its path.
    std::string put_config(const std::string& content, const std::string& name = "config.json") {
        std::string p = m_dir + "/" + name;
        write_file(p, content);
        return p;
    }

    // A config document for our root and tmux server.
    std::string config_json(bool dry_run, const std::string& interval = "200ms",
                            const std::string& extra = "") const {
        return "{\n  \"roots\": [\"" + m_root + "\"],\n  \"interval\": \"" + interval +
               "\",\n  \"tmux_socket\": \"" + m_tmux.socket_name() +
               "\",\n  \"dry_run\": " + (dry_run ? "true" : "false") +
               ",\n  \"log_format\": \"json\",\n  \"log_level\": \"debug\"" + extra + "\n}\n";
    }

    std::string m_last_once_stderr;
};

// =============================================================================================
// 1. --once --json

TEST_F(E2E, OnceJsonDocumentHasTheContractShape) {
    Child owner = spawn_sleeper();
    std::string live = put_live("w-live", owner);
    std::string stale = put_stale("w-stale");

    json::object doc = once_json();
    ASSERT_FALSE(doc.empty());

    ASSERT_NE(member(doc, "roots"), nullptr);
    ASSERT_TRUE(member(doc, "roots")->is_array());
    EXPECT_TRUE(mentions(*member(doc, "roots"), m_root)) << json::serialize(doc);

    ASSERT_NE(member(doc, "tmux"), nullptr);
    ASSERT_TRUE(member(doc, "tmux")->is_object());
    const auto& tmux = member(doc, "tmux")->as_object();
    EXPECT_EQ(str_or(tmux, "state"), "ok") << json::serialize(tmux);
    ASSERT_NE(member(tmux, "detail"), nullptr);
    EXPECT_TRUE(member(tmux, "detail")->is_string());

    ASSERT_NE(member(doc, "locks"), nullptr);
    ASSERT_TRUE(member(doc, "locks")->is_array());
    EXPECT_EQ(member(doc, "locks")->as_array().size(), 2u) << json::serialize(doc);
    for (const auto& l : member(doc, "locks")->as_array()) {
        ASSERT_TRUE(l.is_object());
        for (auto key : {"worker", "lock_path", "pid", "session_id", "hostname", "acquired_at",
                         "verdict", "reason", "action"}) {
            EXPECT_NE(member(l.as_object(), key), nullptr)
                << "lock entry lacks " << key << ": " << json::serialize(l);
        }
    }
    auto e = lock_entry(doc, live);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "worker"), worker("w-live"));
    EXPECT_EQ(int_of(*e, "pid"), owner.pid());
    EXPECT_EQ(str_or(*e, "hostname"), local_hostname());
    EXPECT_FALSE(str_or(*e, "acquired_at").empty());
    EXPECT_FALSE(str_or(*e, "reason").empty());

    for (auto key : {"collisions", "root_errors", "walk_errors", "skipped_runtimes"}) {
        ASSERT_NE(member(doc, key), nullptr) << key;
        EXPECT_TRUE(member(doc, key)->is_array()) << key;
    }

    ASSERT_NE(member(doc, "stats"), nullptr);
    ASSERT_TRUE(member(doc, "stats")->is_object());
    const auto& stats = member(doc, "stats")->as_object();
    for (auto key : {"dirs", "locks", "removed", "would_remove", "unreadable_dirs",
                     "symlinked_runtimes", "elapsed_ms"}) {
        EXPECT_TRUE(int_of(stats, key).has_value()) << "stats lacks " << key;
    }
    EXPECT_EQ(int_of(stats, "locks"), 2);
    EXPECT_EQ(int_of(stats, "removed"), 1);
    EXPECT_EQ(int_of(stats, "unreadable_dirs"), 0);
    EXPECT_GE(int_of(stats, "dirs").value_or(0), 3); // root and two workers at least
}

TEST_F(E2E, OnceRemovesAStaleLock) {
    std::string stale = put_stale("w1");
    json::object doc = once_json();
    auto e = lock_entry(doc, stale);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "stale") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "removed") << json::serialize(*e);
    EXPECT_FALSE(exists(stale));
    // A removed lock no longer collides with anything.
    EXPECT_TRUE(collisions_of(doc, "stale").empty()) << json::serialize(doc);
}

TEST_F(E2E, OnceWithoutJsonRunsOnePassAndExitsZero) {
    std::string stale = put_stale("w1");
    make_dirs(worker("w-linked"));
    ASSERT_EQ(::symlink("/nonexistent-runtime", runtime("w-linked").c_str()), 0);
    RunResult r = run({"--once", "--root", m_root, "--tmux-socket", m_tmux.socket_name()});
    EXPECT_TRUE(r.status.exited && r.status.code == 0) << r.status.describe() << "\n" << r.err;
    EXPECT_FALSE(exists(stale));
    EXPECT_NE(r.out.find(stale), std::string::npos) << "the report names the removed lock:\n"
                                                    << r.out;
    // The symlinked .runtime: named with its target, and counted.
    EXPECT_NE(r.out.find("skipped " + runtime("w-linked") + ": " + runtime("w-linked") +
                         " is a symlink to /nonexistent-runtime"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(" symlinked_runtimes=1 "), std::string::npos) << r.out;
}

TEST_F(E2E, OnceKeepsALiveLock) {
    Child owner = spawn_sleeper();
    std::string live = put_live("w1", owner);
    json::object doc = once_json();
    auto e = lock_entry(doc, live);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "live") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "kept");
    EXPECT_TRUE(exists(live));
}

TEST_F(E2E, OnceKeepsADeadPidLockWhoseSessionLives) {
    // The session may be recorded as a name, a "$N" session id or a "%N" pane id ($TMUX_PANE).
    std::string id = m_tmux.new_session("agent-s1");
    m_tmux.new_session("agent-s2");
    std::string pane = m_tmux.pane_of("agent-s2");
    ASSERT_FALSE(id.empty());
    ASSERT_FALSE(pane.empty());
    std::string by_name = put_stale("w-name", "agent-s1");
    std::string by_id = put_stale("w-id", id);
    std::string by_pane = put_stale("w-pane", pane);

    json::object doc = once_json();
    for (const auto& p : {by_name, by_id, by_pane}) {
        auto e = lock_entry(doc, p);
        ASSERT_TRUE(e) << p << "\n" << json::serialize(doc);
        EXPECT_EQ(str_or(*e, "verdict"), "held-by-session") << json::serialize(*e);
        EXPECT_EQ(str_or(*e, "action"), "kept") << json::serialize(*e);
        EXPECT_TRUE(exists(p)) << p;
    }
}

TEST_F(E2E, OnceReportsALivePidWhoseSessionIsGoneAsOrphaned) {
    Child owner = spawn_sleeper();
    std::string orphan = put_live("w1", owner, "no-such-session");
    json::object doc = once_json();
    auto e = lock_entry(doc, orphan);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "orphaned") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "kept");
    EXPECT_EQ(str_or(*e, "session_id"), "no-such-session");
    EXPECT_TRUE(exists(orphan));
    auto c = collisions_of(doc, "orphaned");
    ASSERT_EQ(c.size(), 1u) << json::serialize(doc);
    EXPECT_EQ(int_of(c[0], "pid"), owner.pid());
    EXPECT_EQ(str_or(c[0], "session_id"), "no-such-session");
    EXPECT_FALSE(str_or(c[0], "message").empty());
}

TEST_F(E2E, OnceKeepsAForeignLock) {
    // A dead local PID means nothing for a lock written on another host.
    std::string foreign = put_lock(
        "w1", go_lock_json(dead_pid(), rfc3339_now(-5s), "", "some-other-host.example.org"));
    json::object doc = once_json();
    auto e = lock_entry(doc, foreign);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "foreign") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "kept");
    EXPECT_EQ(str_or(*e, "hostname"), "some-other-host.example.org");
    EXPECT_TRUE(exists(foreign));
}

TEST_F(E2E, OnceReportsAnInvalidLockAndKeepsIt) {
    std::string bad = put_lock("w1", "{not json");
    json::object doc = once_json();
    auto e = lock_entry(doc, bad);
    ASSERT_TRUE(e) << "an unparseable lock must be reported\n" << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "invalid") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "kept");
    EXPECT_FALSE(str_or(*e, "reason").empty());
    EXPECT_TRUE(exists(bad));
    EXPECT_EQ(test::read_file(bad), "{not json");
}

TEST_F(E2E, OnceDryRunWouldRemoveAndKeepsTheFile) {
    std::string stale = put_stale("w1");
    json::object doc = once_json({"--dry-run"});
    auto e = lock_entry(doc, stale);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "stale");
    EXPECT_EQ(str_or(*e, "action"), "would-remove") << json::serialize(*e);
    EXPECT_TRUE(exists(stale));
    EXPECT_EQ(int_of(member(doc, "stats")->as_object(), "removed"), 0);
    // The lock stays, so the seed's "stale lock" collision is reported.
    auto c = collisions_of(doc, "stale");
    ASSERT_EQ(c.size(), 1u) << json::serialize(doc);
    EXPECT_EQ(string_array(c[0], "workers"), std::vector<std::string>{worker("w1")});
    EXPECT_FALSE(str_or(c[0], "message").empty());
}

TEST_F(E2E, OnceReportsOneSessionClaimedByTwoWorkers) {
    m_tmux.new_session("shared");
    Child a = spawn_sleeper();
    Child b = spawn_sleeper();
    std::string la = put_live("w-a", a, "shared");
    std::string lb = put_live("w-b", b, "shared");
    json::object doc = once_json();
    auto c = collisions_of(doc, "duplicate-session");
    ASSERT_EQ(c.size(), 1u) << json::serialize(doc);
    EXPECT_EQ(str_or(c[0], "session_id"), "shared");
    EXPECT_EQ(string_array(c[0], "workers"),
              (std::vector<std::string>{worker("w-a"), worker("w-b")}));
    EXPECT_FALSE(str_or(c[0], "message").empty());
    EXPECT_TRUE(exists(la));
    EXPECT_TRUE(exists(lb));
}

TEST_F(E2E, OnceReportsOneLivePidHoldingTwoWorkers) {
    Child owner = spawn_sleeper();
    std::string la = put_live("w-a", owner);
    std::string lb = put_live("w-b", owner);
    json::object doc = once_json();
    auto c = collisions_of(doc, "duplicate-pid");
    ASSERT_EQ(c.size(), 1u) << json::serialize(doc);
    EXPECT_EQ(int_of(c[0], "pid"), owner.pid());
    EXPECT_EQ(string_array(c[0], "workers"),
              (std::vector<std::string>{worker("w-a"), worker("w-b")}));
    EXPECT_FALSE(str_or(c[0], "message").empty());
    EXPECT_TRUE(exists(la));
    EXPECT_TRUE(exists(lb));
}

// The cardinal rule: when tmux cannot be asked, a dead-PID lock whose session may live is kept.
// Only "no server running" on a path that is still a socket is definitive; anything else is
// unknown: a wrong socket name (tmux: "error connecting to ... (No such file or directory)"), a
// socket path under a regular file (ENOTDIR), or a path to a regular file (connect(2) gives
// ECONNREFUSED there too, so tmux says "no server running", but nothing could ever listen there).
class E2EUnknownTmux : public E2E, public ::testing::WithParamInterface<std::string> {};

TEST_P(E2EUnknownTmux, OnceKeepsADeadPidLockThatRecordsASession) {
    std::vector<std::string> tmux_flag;
    write_file(m_dir + "/plain-file", "not a socket\n");
    if (GetParam() == "missing-socket-name") {
        tmux_flag = {"--tmux-socket", m_tmux.socket_name() + "-typo"};
    } else if (GetParam() == "path-under-a-file") {
        tmux_flag = {"--tmux-socket-path", m_dir + "/plain-file/tmux.sock"};
    } else {
        tmux_flag = {"--tmux-socket-path", m_dir + "/plain-file"};
    }
    std::string held = put_stale("w1", "anchor");
    std::string stale = put_stale("w2");
    json::object doc = once_json(tmux_flag);
    ASSERT_NE(member(doc, "tmux"), nullptr);
    EXPECT_EQ(str_or(member(doc, "tmux")->as_object(), "state"), "unknown") << json::serialize(doc);
    EXPECT_FALSE(str_or(member(doc, "tmux")->as_object(), "detail").empty());
    auto e = lock_entry(doc, held);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "unknown") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "kept");
    EXPECT_TRUE(exists(held));
    // A lock that records no session does not depend on tmux: still stale.
    auto s2 = lock_entry(doc, stale);
    ASSERT_TRUE(s2) << json::serialize(doc);
    EXPECT_EQ(str_or(*s2, "verdict"), "stale") << json::serialize(*s2);
    EXPECT_FALSE(exists(stale));
}

INSTANTIATE_TEST_SUITE_P(Causes, E2EUnknownTmux,
                         ::testing::Values("missing-socket-name", "path-under-a-file",
                                           "path-to-a-file"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                             std::string name;
                             for (char c : param_info.param) {
                                 name += c == '-' ? '_' : c;
                             }
                             return name;
                         });

TEST_F(E2E, OnceWithNoTmuxServerRemovesADeadPidLockWhoseSessionCannotExist) {
    // "No server running" is definitive: there are no sessions, so the session cannot hold it.
    // A socket nobody listens on, as a tmux server that died leaves behind.
    std::string dead_socket = m_dir + "/dead-tmux.sock";
    make_dead_socket(dead_socket);
    std::string stale = put_stale("w1", "anchor");
    json::object doc = once_json({"--tmux-socket-path", dead_socket});
    ASSERT_NE(member(doc, "tmux"), nullptr);
    EXPECT_EQ(str_or(member(doc, "tmux")->as_object(), "state"), "no-server")
        << json::serialize(doc);
    auto e = lock_entry(doc, stale);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "stale") << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "removed");
    EXPECT_FALSE(exists(stale));
}

// gastown's pattern: `gt prime` wrote each lock and exited, session_id is the agent's pane. A
// pane whose process has exited (kept by remain-on-exit) and a pane of a session created long
// after the lock do not hold; a live pane created just after its lock (a launcher) does.
TEST_F(E2E, OnceJudgesGastownPaneLocksByTheirPanesAge) {
    ASSERT_EQ(m_tmux.tmux("set-option -g remain-on-exit on").status, 0);
    m_tmux.new_session("gt-w-live");
    m_tmux.new_session("gt-w-dead");
    const std::string live_pane = m_tmux.pane_of("gt-w-live");
    const std::string dead_pane = m_tmux.pane_of("gt-w-dead");
    const pid_t dead_agent = m_tmux.pane_pid("gt-w-dead");
    ASSERT_EQ(::kill(dead_agent, SIGKILL), 0);
    ASSERT_TRUE(test::wait_until([&] {
        return m_tmux.tmux("display-message -p -t " + dead_pane + " '#{pane_dead}'").out == "1\n";
    }));
    const std::string host = local_hostname();
    const std::string live =
        put_lock("w-live", go_lock_json(dead_pid(), rfc3339_now(-5s), live_pane, host));
    const std::string dead =
        put_lock("w-dead", go_lock_json(dead_pid(), rfc3339_now(-5s), dead_pane, host));
    const std::string older =
        put_lock("w-older", go_lock_json(dead_pid(), rfc3339_now(-10min), live_pane, host));

    // With a slack of eleven minutes, the older lock's pane counts as created in time.
    json::object doc = once_json({"--tmux-created-slack", "11m", "--dry-run"});
    auto e = lock_entry(doc, older);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "held-by-session") << json::serialize(*e);

    doc = once_json();
    e = lock_entry(doc, live);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "held-by-session") << json::serialize(*e);
    EXPECT_TRUE(exists(live));
    e = lock_entry(doc, dead);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "stale") << json::serialize(*e);
    EXPECT_NE(str_or(*e, "reason").find("pane " + dead_pane + " is dead"), std::string::npos)
        << json::serialize(*e);
    EXPECT_EQ(str_or(*e, "action"), "removed");
    EXPECT_FALSE(exists(dead));
    e = lock_entry(doc, older);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "verdict"), "stale") << json::serialize(*e);
    EXPECT_NE(str_or(*e, "reason").find("tmux server was created at"), std::string::npos)
        << json::serialize(*e);
    EXPECT_FALSE(exists(older));
}

// =============================================================================================
// 2. The running daemon removes stale locks and keeps the others

TEST_F(E2E, DaemonRemovesAStaleLockWithinOneInterval) {
    DaemonProcess& d = start_ready(daemon_args("200ms"));
    std::size_t mark = d.event_count();
    std::string stale = put_stale("w1");

    auto removed = d.wait_for_event("lock.removed", about_lock(stale), mark);
    ASSERT_TRUE(removed) << "stale lock never removed\n" << d.tail();
    EXPECT_FALSE(exists(stale));
    // Within one interval: at most one pass (the one that may have been running when the lock
    // appeared) completes between the lock's creation and its removal.
    std::size_t passes_before = 0;
    for (const auto& ev : d.find_events("pass.completed", nullptr, mark)) {
        passes_before += ev.index < removed->index ? 1u : 0u;
    }
    EXPECT_LE(passes_before, 1u) << "the stale lock survived a whole pass";
}

TEST_F(E2E, LockRemovedEventCarriesContentReasonAndEvidence) {
    DaemonProcess& d = start_ready(daemon_args("200ms"));
    pid_t pid = dead_pid();
    std::string acquired = rfc3339_now(-5s);
    std::string content = go_lock_json(pid, acquired, "", local_hostname());
    std::size_t mark = d.event_count();
    std::string stale = put_lock("w1", content);

    auto ev = d.wait_for_event("lock.removed", about_lock(stale), mark);
    ASSERT_TRUE(ev) << d.tail();
    EXPECT_EQ(ev->str("level"), "info") << ev->dump();
    EXPECT_EQ(ev->str("worker"), worker("w1")) << ev->dump();
    // The full content of the removed lock, so that no record is lost.
    EXPECT_EQ(ev->str("content"), content) << ev->dump();
    EXPECT_EQ(int_of(ev->fields, "pid"), pid) << "a JSON number (docs/logging.md): " << ev->dump();
    EXPECT_EQ(ev->str("acquired_at"), acquired) << ev->dump();
    EXPECT_EQ(ev->str("hostname"), local_hostname()) << ev->dump();
    // The verdict's reason and the evidence: the PID's state and tmux's state.
    EXPECT_FALSE(ev->str("reason").value_or("").empty()) << ev->dump();
    EXPECT_EQ(ev->str("pid_state"), "dead") << ev->dump();
    EXPECT_EQ(ev->str("tmux_state"), "ok") << ev->dump();
}

TEST_F(E2E, DaemonKeepsLiveAndSessionHeldLocksAcrossPasses) {
    Child owner = spawn_sleeper();
    std::string live = put_live("w-live", owner);
    m_tmux.new_session("held");
    std::string held = put_stale("w-held", "held");
    std::string stale = put_stale("w-stale");

    DaemonProcess& d = start_ready(daemon_args("200ms"));
    std::size_t mark = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 4, mark)) << d.tail();
    EXPECT_TRUE(exists(live));
    EXPECT_TRUE(exists(held));
    EXPECT_FALSE(exists(stale)) << "the daemon did not remove anything: the test proves nothing";
    EXPECT_TRUE(d.find_events("lock.removed", about_lock(live)).empty());
    EXPECT_TRUE(d.find_events("lock.removed", about_lock(held)).empty());
    EXPECT_EQ(d.find_events("lock.held_by_session", about_lock(held)).size(), 1u) << d.tail();
    // The cleaner never creates files in worker trees (no sidecar flock of its own).
    EXPECT_FALSE(exists(worker("w-live") + "/.runtime/agent.lock.flock"));
    EXPECT_FALSE(exists(worker("w-held") + "/.runtime/agent.lock.flock"));
    EXPECT_TRUE(d.running());
}

// =============================================================================================
// 3. Findings are logged once when they appear, once when they go away

TEST_F(E2E, OrphanedLockAndDuplicateClaimsAreLoggedOnce) {
    m_tmux.new_session("shared");
    Child orphan_owner = spawn_sleeper();
    std::string orphan = put_live("w-orphan", orphan_owner, "gone-session");
    Child a = spawn_sleeper();
    Child b = spawn_sleeper();
    put_live("w-dup-a", a, "shared");
    put_live("w-dup-b", b, "shared");
    Child both = spawn_sleeper();
    put_live("w-pid-a", both);
    put_live("w-pid-b", both);

    DaemonProcess& d = start_ready(daemon_args("200ms"));
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 5)) << d.tail();
    d.send_signal(SIGUSR1);
    std::size_t mark = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 2, mark)) << d.tail();

    EXPECT_EQ(d.find_events("lock.orphaned", about_lock(orphan)).size(), 1u) << d.tail();
    auto dup_session = d.find_events("collision.duplicate_session");
    EXPECT_EQ(dup_session.size(), 1u) << d.tail();
    if (!dup_session.empty()) {
        EXPECT_TRUE(mentions(dup_session[0], "shared")) << dup_session[0].dump();
        EXPECT_TRUE(mentions(dup_session[0], worker("w-dup-a"))) << dup_session[0].dump();
        EXPECT_TRUE(mentions(dup_session[0], worker("w-dup-b"))) << dup_session[0].dump();
    }
    auto dup_pid = d.find_events("collision.duplicate_pid");
    EXPECT_EQ(dup_pid.size(), 1u) << d.tail();
    if (!dup_pid.empty()) {
        EXPECT_EQ(log_int(dup_pid[0], "pid"), both.pid()) << dup_pid[0].dump();
        EXPECT_TRUE(mentions(dup_pid[0], worker("w-pid-a"))) << dup_pid[0].dump();
        EXPECT_TRUE(mentions(dup_pid[0], worker("w-pid-b"))) << dup_pid[0].dump();
    }
    EXPECT_TRUE(d.find_events("lock.removed").empty()) << "no lock here is removable";
    for (const auto& ev : d.events()) {
        if (ev.name() == "lock.orphaned" || ev.name().rfind("collision.", 0) == 0) {
            EXPECT_EQ(ev.str("state"), "appeared") << ev.dump();
        }
    }

    // When the findings go away, each is logged once more: the orphan's owner and the PID that
    // held two workers die, so their locks become stale and are removed.
    mark = d.event_count();
    orphan_owner.kill_and_reap();
    both.kill_and_reap();
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(orphan), mark)) << d.tail();
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(lock_path("w-pid-b")), mark))
        << d.tail();
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(lock_path("w-pid-a")), mark))
        << d.tail();
    std::size_t after = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 3, after)) << d.tail();
    auto resolved = [](const LogEvent& ev) { return ev.str("state") == "resolved"; };
    EXPECT_EQ(d.find_events("lock.orphaned", nullptr, mark).size(), 1u) << d.tail();
    EXPECT_EQ(d.find_events("lock.orphaned", resolved, mark).size(), 1u) << d.tail();
    EXPECT_EQ(d.find_events("collision.duplicate_pid", nullptr, mark).size(), 1u) << d.tail();
    EXPECT_EQ(d.find_events("collision.duplicate_pid", resolved, mark).size(), 1u) << d.tail();
    // The duplicate session claim is still there and is not logged again.
    EXPECT_TRUE(d.find_events("collision.duplicate_session", nullptr, mark).empty()) << d.tail();
}

// =============================================================================================
// 4. SIGHUP reloads a good config and rejects a bad one

TEST_F(E2E, SighupReloadsAGoodConfig) {
    std::string config = put_config(config_json(false));
    DaemonProcess& d = start_ready({"--config", config});
    std::size_t ev_mark = d.event_count();
    std::size_t n_mark = notify().count();

    put_config(config_json(true)); // dry_run on
    d.send_signal(SIGHUP);
    auto reloaded = d.wait_for_event("config.reloaded", nullptr, ev_mark);
    ASSERT_TRUE(reloaded) << d.tail();
    auto reloading = notify().wait_for_key("RELOADING", "1", n_mark);
    ASSERT_TRUE(reloading) << "no RELOADING=1 after SIGHUP";
    EXPECT_TRUE(notify().messages()[*reloading].has("MONOTONIC_USEC"))
        << notify().messages()[*reloading].raw;
    EXPECT_TRUE(notify().wait_for_key("READY", "1", *reloading + 1)) << "no READY=1 after reload";

    // The new config is in force: a stale lock is now only reported. (Passes do not overlap, so
    // the second pass to complete after the reload started after it.)
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 2, reloaded->index)) << d.tail();
    std::size_t mark = d.event_count();
    std::string stale = put_stale("w1");
    auto would = d.wait_for_event("lock.would_remove", about_lock(stale), mark);
    ASSERT_TRUE(would) << d.tail();
    EXPECT_TRUE(exists(stale));
    EXPECT_TRUE(d.find_events("lock.removed", about_lock(stale)).empty());
    EXPECT_TRUE(d.running());
}

TEST_F(E2E, SighupRejectsABadConfigAndKeepsTheOldOne) {
    std::string config = put_config(config_json(false));
    DaemonProcess& d = start_ready({"--config", config});

    // Garbage.
    std::size_t ev_mark = d.event_count();
    std::size_t n_mark = notify().count();
    put_config("this is { not json");
    d.send_signal(SIGHUP);
    auto rejected = d.wait_for_event("config.rejected", nullptr, ev_mark);
    ASSERT_TRUE(rejected) << d.tail();
    EXPECT_EQ(rejected->str("level"), "error") << rejected->dump();
    EXPECT_TRUE(mentions(*rejected, config))
        << "the rejection names the file: " << rejected->dump();
    auto reloading = notify().wait_for_key("RELOADING", "1", n_mark);
    ASSERT_TRUE(reloading) << "no RELOADING=1 after SIGHUP";
    EXPECT_TRUE(notify().messages()[*reloading].has("MONOTONIC_USEC"));
    EXPECT_TRUE(notify().wait_for_key("READY", "1", *reloading + 1)) << "no READY=1 after reload";

    // Valid JSON with an unknown key (and a dry_run that must not leak in): rejected by name.
    ev_mark = d.event_count();
    n_mark = notify().count();
    put_config(config_json(true, "200ms", ",\n  \"bogus_key\": 1"));
    d.send_signal(SIGHUP);
    rejected = d.wait_for_event("config.rejected", nullptr, ev_mark);
    ASSERT_TRUE(rejected) << d.tail();
    EXPECT_TRUE(mentions(*rejected, "bogus_key")) << rejected->dump();
    reloading = notify().wait_for_key("RELOADING", "1", n_mark);
    ASSERT_TRUE(reloading);
    EXPECT_TRUE(notify().wait_for_key("READY", "1", *reloading + 1));
    EXPECT_TRUE(d.find_events("config.reloaded").empty()) << d.tail();

    // Still running, still passing, still with the old config (dry_run off): a stale lock goes.
    ASSERT_TRUE(d.running()) << d.tail();
    std::size_t mark = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 1, mark)) << d.tail();
    std::string stale = put_stale("w1");
    EXPECT_TRUE(d.wait_for_event("lock.removed", about_lock(stale), mark)) << d.tail();
    EXPECT_FALSE(exists(stale));
}

// =============================================================================================
// 5. SIGUSR1 runs a pass now

TEST_F(E2E, Sigusr1TriggersAPass) {
    DaemonProcess& d = start_ready(daemon_args("1h"));
    std::size_t mark = d.event_count();
    std::string stale = put_stale("w1");
    d.send_signal(SIGUSR1);
    auto removed = d.wait_for_event("lock.removed", about_lock(stale), mark);
    ASSERT_TRUE(removed) << "SIGUSR1 did not run a pass\n" << d.tail();
    EXPECT_FALSE(exists(stale));

    // Again: SIGUSR1 keeps working.
    mark = d.event_count();
    std::string stale2 = put_stale("w2");
    d.send_signal(SIGUSR1);
    EXPECT_TRUE(d.wait_for_event("lock.removed", about_lock(stale2), mark)) << d.tail();
    EXPECT_FALSE(exists(stale2));
}

// =============================================================================================
// 6. SIGTERM and SIGINT stop the daemon cleanly

TEST_F(E2E, SigtermExitsZero) {
    for (int i = 0; i < 20; ++i) { // some work, so that a pass may be running when SIGTERM lands
        put_stale("w" + std::to_string(i));
    }
    DaemonProcess& d = start_ready(daemon_args("200ms"));
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 2)) << d.tail();
    std::size_t n_mark = notify().count();
    d.send_signal(SIGTERM);
    auto st = d.wait_exit();
    ASSERT_TRUE(st) << "agentlockd did not exit after SIGTERM\n" << d.tail();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe() << "\n" << d.tail();
    EXPECT_TRUE(d.wait_for_event("daemon.stopping", nullptr, 0, 1s)) << d.tail();
    EXPECT_TRUE(notify().wait_for_key("STOPPING", "1", n_mark, 2s));
}

TEST_F(E2E, SigintExitsZero) {
    DaemonProcess& d = start_ready(daemon_args("200ms"));
    std::size_t n_mark = notify().count();
    d.send_signal(SIGINT);
    auto st = d.wait_exit();
    ASSERT_TRUE(st) << "agentlockd did not exit after SIGINT\n" << d.tail();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe() << "\n" << d.tail();
    EXPECT_TRUE(d.wait_for_event("daemon.stopping", nullptr, 0, 1s)) << d.tail();
    EXPECT_TRUE(notify().wait_for_key("STOPPING", "1", n_mark, 2s));
}

// =============================================================================================
// 7. sd_notify

TEST_F(E2E, NotifyMessagesArriveOnTheNotifySocket) {
    // READY=1 comes after the first pass has ended: the stale lock is already gone then.
    std::string stale = put_stale("w1");
    DaemonProcess& d = start_ready(daemon_args("200ms"), 200000);
    EXPECT_FALSE(exists(stale)) << "READY=1 came before the first pass ended";

    auto status = notify().wait_for_key("STATUS");
    ASSERT_TRUE(status) << "no STATUS=";
    std::string text = notify().messages()[*status].fields.at("STATUS");
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.find('\n'), std::string::npos);

    // WATCHDOG_USEC=200000: a WATCHDOG=1 every 100 ms; wait for a few.
    EXPECT_TRUE(test::wait_until([&] { return notify().count_key("WATCHDOG", "1") >= 3; }))
        << "WATCHDOG=1 did not keep coming";

    std::size_t n_mark = notify().count();
    d.send_signal(SIGHUP); // re-reads the (empty) config file under the same flags
    auto reloading = notify().wait_for_key("RELOADING", "1", n_mark);
    ASSERT_TRUE(reloading) << d.tail();
    EXPECT_TRUE(notify().messages()[*reloading].has("MONOTONIC_USEC"));
    EXPECT_TRUE(notify().wait_for_key("READY", "1", *reloading + 1));

    n_mark = notify().count();
    d.send_signal(SIGTERM);
    auto st = d.wait_exit();
    ASSERT_TRUE(st) << d.tail();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe();
    EXPECT_TRUE(notify().wait_for_key("STOPPING", "1", n_mark, 2s));
}

TEST_F(E2E, NoWatchdogPingsForAnotherProcess) {
    // sd_watchdog_enabled honours WATCHDOG_PID: set for another PID, the daemon must not ping.
    DaemonSpec spec;
    spec.args = isolated(daemon_args("200ms"));
    spec.notify_socket = notify().path();
    spec.extra_env = {"WATCHDOG_USEC=200000", "WATCHDOG_PID=1"};
    m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
    wait_ready(*m_daemon);
    std::size_t mark = m_daemon->event_count();
    ASSERT_TRUE(m_daemon->wait_for_nth_event("pass.completed", 3, mark)) << m_daemon->tail();
    EXPECT_EQ(notify().count_key("WATCHDOG"), 0u);
}

// =============================================================================================
// 8. Every JSON log line parses

TEST_F(E2E, EveryJsonLogLineParses) {
    // A run that exercises most events: removals, findings, reloads good and bad, SIGUSR1, stop.
    Child owner = spawn_sleeper();
    put_live("w-live", owner);
    // A session id that needs escaping in JSON (written escaped, as Go would).
    put_lock("w-orphan", "{\n  \"pid\": " + std::to_string(owner.pid()) +
                             ",\n  \"acquired_at\": \"" + rfc3339_now() +
                             "\",\n  \"session_id\": \"gone \\\"quoted\\\" session\\twith tab\"" +
                             ",\n  \"hostname\": \"" + local_hostname() + "\"\n}");
    put_stale("w-stale");
    put_lock("w-invalid", "{not json");
    put_lock("w-foreign", go_lock_json(dead_pid(), rfc3339_now(-5s), "", "elsewhere.example"));
    std::string config = put_config(config_json(false));
    DaemonProcess& d = start_ready({"--config", config, "--log-format", "json"});
    std::size_t mark = d.event_count();
    d.send_signal(SIGUSR1);
    put_config("garbage");
    d.send_signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_event("config.rejected", nullptr, mark)) << d.tail();
    put_config(config_json(false));
    d.send_signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_event("config.reloaded", nullptr, mark)) << d.tail();
    d.send_signal(SIGTERM);
    auto st = d.wait_exit();
    ASSERT_TRUE(st && st->exited && st->code == 0) << d.tail();

    std::string err = d.stderr_text();
    ASSERT_FALSE(err.empty());
    EXPECT_EQ(err.back(), '\n') << "the last log line is incomplete";
    std::size_t n = 0;
    std::size_t start = 0;
    while (start < err.size()) {
        std::size_t end = err.find('\n', start);
        if (end == std::string::npos) {
            end = err.size();
        }
        std::string line = err.substr(start, end - start);
        start = end + 1;
        ++n;
        std::string error;
        auto v = parse_json(line, &error);
        ASSERT_TRUE(v) << "log line " << n << " does not parse (" << error << "): " << line;
        ASSERT_TRUE(v->is_object()) << "log line " << n << " is not an object: " << line;
        const auto& o = v->as_object();
        for (auto key : {"ts", "level", "event"}) {
            ASSERT_NE(member(o, key), nullptr)
                << "log line " << n << " lacks " << key << ": " << line;
            EXPECT_TRUE(member(o, key)->is_string()) << key << " in: " << line;
        }
    }
    EXPECT_GE(n, 5u);
    for (auto name : {"daemon.started", "lock.removed", "lock.orphaned", "lock.invalid",
                      "lock.foreign", "config.rejected", "config.reloaded", "daemon.stopping"}) {
        EXPECT_FALSE(d.find_events(name).empty()) << "no " << name << " event\n" << d.tail();
    }
    EXPECT_EQ(d.stdout_text(), "") << "logs go to stderr; stdout stays clean";
}

// =============================================================================================
// 9. The root goes away and comes back

TEST_F(E2E, RootRemovedAndRecreatedIsLoggedAndTheDaemonResumes) {
    DaemonProcess& d = start_ready(daemon_args("200ms"));
    std::size_t mark = d.event_count();
    std::filesystem::remove_all(m_root);
    auto gone = d.wait_for_event("root.unavailable", nullptr, mark);
    ASSERT_TRUE(gone) << d.tail();
    EXPECT_TRUE(mentions(*gone, m_root)) << gone->dump();
    // Logged once, not on every pass.
    std::size_t after_gone = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 3, after_gone)) << d.tail();
    EXPECT_EQ(d.find_events("root.unavailable", nullptr, mark).size(), 1u) << d.tail();
    ASSERT_TRUE(d.running()) << d.tail();

    mark = d.event_count();
    make_dirs(m_root);
    std::string stale = put_stale("w1");
    auto back = d.wait_for_event("root.recovered", nullptr, mark);
    ASSERT_TRUE(back) << d.tail();
    EXPECT_EQ(back->str("state"), "resolved") << back->dump();
    EXPECT_EQ(gone->str("state"), "appeared") << gone->dump();
    EXPECT_TRUE(mentions(*back, m_root)) << back->dump();
    EXPECT_TRUE(d.wait_for_event("lock.removed", about_lock(stale), mark)) << d.tail();
    EXPECT_FALSE(exists(stale));
    EXPECT_TRUE(d.running());
}

// =============================================================================================
// tmux going away and coming back, in the running daemon

TEST_F(E2E, TmuxUnreachableAndRecoveredAreLoggedAndSessionLocksAreKeptMeanwhile) {
    // The daemon asks a tmux server that does not exist yet: tmux answers "error connecting ...
    // (No such file or directory)", which may be a wrong socket: unknown, never a removal.
    test::TmuxServerFixture later;
    std::string held = put_stale("w1", "agent-x");
    std::vector<std::string> args = daemon_args("200ms");
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--tmux-socket") {
            args[i + 1] = later.socket_name();
        }
    }
    DaemonProcess& d = start_ready(args);
    auto unreachable = d.wait_for_event("tmux.unreachable");
    ASSERT_TRUE(unreachable) << d.tail();
    EXPECT_TRUE(d.wait_for_event("lock.unknown", about_lock(held))) << d.tail();
    std::size_t mark = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 3, mark)) << d.tail();
    EXPECT_TRUE(exists(held)) << "a lock was removed while tmux could not be asked";
    EXPECT_EQ(d.find_events("tmux.unreachable").size(), 1u) << "logged once, not every pass";
    EXPECT_EQ(d.find_events("lock.unknown", about_lock(held)).size(), 1u) << d.tail();

    // The server comes up with the lock's session: recovered, and the session holds the lock.
    mark = d.event_count();
    later.new_session("agent-x");
    later.new_session("other");
    auto recovered = d.wait_for_event("tmux.recovered", nullptr, mark);
    ASSERT_TRUE(recovered) << d.tail();
    EXPECT_EQ(recovered->str("state"), "resolved") << recovered->dump();
    EXPECT_EQ(recovered->str("tmux_state"), "ok") << recovered->dump();
    EXPECT_EQ(unreachable->str("state"), "appeared") << unreachable->dump();
    EXPECT_EQ(unreachable->str("tmux_state"), "unknown") << unreachable->dump();
    EXPECT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(held), mark)) << d.tail();
    EXPECT_TRUE(exists(held));

    // The session ends while the server stays: now the lock is stale and goes.
    mark = d.event_count();
    later.kill_session("agent-x");
    EXPECT_TRUE(d.wait_for_event("lock.removed", about_lock(held), mark)) << d.tail();
    EXPECT_FALSE(exists(held));
}

// =============================================================================================
// Log formats and levels

TEST_F(E2E, TextFormatIsLogfmt) {
    DaemonProcess& d = start_ready({"--root", m_root, "--tmux-socket", m_tmux.socket_name(),
                                    "--log-format", "text", "--interval", "200ms"});
    pid_t pid = dead_pid();
    std::string content = go_lock_json(pid, rfc3339_now(-5s), "", local_hostname());
    std::string stale = put_lock("w 1", content); // a path with a space must be quoted
    std::string line;
    ASSERT_TRUE(test::wait_until([&] {
        for (const auto& l : d.log_lines()) {
            if (l.find("lock.removed ") != std::string::npos) {
                line = l;
                return true;
            }
        }
        return false;
    })) << d.tail();
    std::size_t at = line.find("lock.removed ");
    ASSERT_TRUE(at == 0 || line[at - 1] == ' ') << line;
    auto fields =
        parse_logfmt(std::string_view(line).substr(at + std::string("lock.removed ").size()));
    ASSERT_TRUE(fields) << "not logfmt after the event name: " << line;
    EXPECT_EQ((*fields)["lock_path"], stale) << line;
    EXPECT_EQ((*fields)["content"], content) << line;
    EXPECT_EQ((*fields)["pid"], std::to_string(pid)) << line;
    for (const auto& l : d.log_lines()) {
        EXPECT_NE(l.front(), '{') << "a JSON line in text format: " << l;
    }
}

TEST_F(E2E, ForcedLogFormatWinsOverTheJournal) {
    // stderr looks like the journal's stream, but --log-format json forces JSON on stderr.
    DaemonSpec spec;
    spec.args = isolated(daemon_args("200ms"));
    spec.notify_socket = notify().path();
    spec.journal_stream_is_stderr = true;
    m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
    wait_ready(*m_daemon);
    ASSERT_TRUE(m_daemon->wait_for_event("daemon.started")) << m_daemon->tail();
    for (const auto& l : m_daemon->log_lines()) {
        auto v = parse_json(l);
        EXPECT_TRUE(v && v->is_object()) << "not a JSON log line: " << l;
    }
}

TEST_F(E2E, PassSummaryIsNotLoggedAtInfoOnEveryPass) {
    std::vector<std::string> args = daemon_args("200ms");
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--log-level") {
            args[i + 1] = "info";
        }
    }
    DaemonProcess& d = start_ready(args);
    // Three removals prove at least three more passes ran.
    for (int i = 0; i < 3; ++i) {
        std::size_t mark = d.event_count();
        std::string stale = put_stale("w" + std::to_string(i));
        ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(stale), mark)) << d.tail();
    }
    EXPECT_LE(d.find_events("pass.completed").size(), 1u) << d.tail();
    for (const auto& ev : d.events()) {
        EXPECT_NE(ev.str("level"), "debug") << ev.dump();
    }
}

// =============================================================================================
// A long pass blocks neither the watchdog nor signals

TEST_F(E2E, AHangingTmuxQueryBlocksNeitherTheWatchdogNorSigterm) {
    // A socket that accepts connections and never answers: every tmux query hangs until the
    // probe's time-out (seconds), so every pass is long.
    std::string hang = m_dir + "/hanging-tmux.sock";
    HangingListener listener(hang);
    // --tmux-timeout (the daemon's own flag, not in the contract) keeps the test short.
    std::vector<std::string> args{"--root",       m_root,  "--tmux-socket-path", hang,
                                  "--log-format", "json",  "--log-level",        "debug",
                                  "--interval",   "200ms", "--tmux-timeout",     "1500ms"};
    DaemonProcess& d = start_ready(args, 200000);
    std::size_t ready_at = notify().count();
    std::size_t mark = d.event_count();
    // The next pass hangs as long as the first: meanwhile WATCHDOG=1 must keep coming every
    // 100 ms (a loop blocked by the pass would send at most a couple before it starts).
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 1, mark)) << d.tail();
    EXPECT_GE(notify().count_key("WATCHDOG", "1", ready_at), 8u)
        << "the watchdog stalled during a long pass";
    auto completed = d.find_events("pass.completed", nullptr, mark);
    ASSERT_FALSE(completed.empty());
    EXPECT_EQ(completed[0].str("tmux"), "unknown") << completed[0].dump();

    // SIGTERM while the next pass hangs: a clean exit 0.
    std::size_t n_mark = notify().count();
    ASSERT_TRUE(notify().wait_for_key("WATCHDOG", "1", n_mark));
    ASSERT_TRUE(notify().wait_for_key("WATCHDOG", "1", notify().count()));
    n_mark = notify().count();
    d.send_signal(SIGTERM);
    auto st = d.wait_exit();
    ASSERT_TRUE(st) << "agentlockd did not exit after SIGTERM during a pass\n" << d.tail();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe() << "\n" << d.tail();
    EXPECT_TRUE(d.wait_for_event("daemon.stopping", nullptr, 0, 1s)) << d.tail();
    EXPECT_TRUE(notify().wait_for_key("STOPPING", "1", n_mark, 2s));
}

TEST_F(E2E, Sigusr1RepeatsDuringAPassMergeIntoOneMorePass) {
    // Every pass hangs on tmux for a second, so the signals surely land while one runs.
    std::string hang = m_dir + "/hanging-tmux.sock";
    HangingListener listener(hang);
    DaemonProcess& d =
        start_ready({"--root", m_root, "--tmux-socket-path", hang, "--log-format", "json",
                     "--log-level", "debug", "--interval", "1h", "--tmux-timeout", "1s"});
    auto first = d.find_events("pass.completed");
    ASSERT_EQ(first.size(), 1u) << d.tail();
    long long n = log_int(first[0], "pass").value_or(-1);
    std::size_t mark = d.event_count();
    for (std::size_t i = 1; i <= 3; ++i) {
        d.send_signal(SIGUSR1);
        ASSERT_TRUE(d.wait_for_nth_event("pass.requested", i, mark)) << d.tail();
    }
    auto requested = d.find_events("pass.requested", nullptr, mark);
    ASSERT_EQ(requested.size(), 3u);
    EXPECT_EQ(requested[0].str("when"), "now") << requested[0].dump();
    EXPECT_EQ(requested[1].str("when"), "after-current") << requested[1].dump();
    EXPECT_EQ(requested[2].str("when"), "merged") << requested[2].dump();
    // Two passes: the one running and a single one for the two repeats.
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 2, mark)) << d.tail();
    // One more signal once idle runs the very next pass number: no third pass was queued.
    std::size_t mark2 = d.event_count();
    d.send_signal(SIGUSR1);
    auto again = d.wait_for_event("pass.requested", nullptr, mark2);
    ASSERT_TRUE(again) << d.tail();
    EXPECT_EQ(again->str("when"), "now") << "a pass was still queued: " << again->dump();
    auto next = d.wait_for_nth_event("pass.completed", 1, mark2);
    ASSERT_TRUE(next) << d.tail();
    EXPECT_EQ(log_int(*next, "pass"), n + 3) << d.tail();
    EXPECT_EQ(d.find_events("pass.completed", nullptr, mark).size(), 3u) << d.tail();
}

// =============================================================================================
// Config file and flags

TEST_F(E2E, FlagsWinOverTheConfigFile) {
    std::string other = m_dir + "/other-root"; // does not exist: only the flag's root is used
    std::string config =
        put_config("{\n  \"roots\": [\"" + other + "\"],\n  \"dry_run\": false,\n" +
                   "  \"interval\": \"1h\"\n}\n");
    std::string stale = put_stale("w1");
    json::object doc = once_json({"--config", config, "--root", m_root, "--dry-run"});
    EXPECT_EQ(string_array(doc, "roots"), std::vector<std::string>{m_root}) << json::serialize(doc);
    auto e = lock_entry(doc, stale);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "action"), "would-remove") << json::serialize(*e);
    EXPECT_TRUE(exists(stale));
}

TEST_F(E2E, ConfigFileSettingsApply) {
    std::string stale = put_stale("w1");
    std::string config = put_config(config_json(true));
    json::object doc = once_json({"--config", config});
    EXPECT_EQ(string_array(doc, "roots"), std::vector<std::string>{m_root}) << json::serialize(doc);
    auto e = lock_entry(doc, stale);
    ASSERT_TRUE(e) << json::serialize(doc);
    EXPECT_EQ(str_or(*e, "action"), "would-remove")
        << "dry_run from the file: " << json::serialize(*e);
}

TEST_F(E2E, DurationsTakeMillisecondsSecondsAndMinutes) {
    for (const std::string duration : {"500ms", "30s", "5m"}) {
        RunResult r = run({"--once", "--json", "--root", m_root, "--tmux-socket",
                           m_tmux.socket_name(), "--interval", duration});
        EXPECT_TRUE(r.status.exited && r.status.code == 0)
            << duration << ": " << r.status.describe() << "\n"
            << r.err;
        std::string config =
            put_config(config_json(false, duration), "config-" + duration + ".json");
        RunResult c = run({"--check-config", "--config", config});
        EXPECT_TRUE(c.status.exited && c.status.code == 0)
            << duration << " in a config: " << c.status.describe() << "\n"
            << c.err << c.out;
    }
}

// =============================================================================================
// 10. Exit codes

TEST_F(E2E, CheckConfigAcceptsAValidFile) {
    std::string config = put_config(config_json(false));
    RunResult r = run({"--check-config", "--config", config});
    EXPECT_TRUE(r.status.exited && r.status.code == 0) << r.status.describe() << "\n" << r.err;
}

TEST_F(E2E, CheckConfigRejectsGarbage) {
    std::string config = put_config("{ \"roots\": [ garbage");
    RunResult r = run({"--check-config", "--config", config});
    EXPECT_TRUE(r.status.exited && r.status.code == 1) << r.status.describe();
    EXPECT_NE((r.err + r.out).find(config), std::string::npos) << "the reason names the file:\n"
                                                               << r.err << r.out;
}

TEST_F(E2E, CheckConfigNamesAnUnknownKey) {
    std::string config = put_config(config_json(false, "200ms", ",\n  \"bogus_key\": true"));
    RunResult r = run({"--check-config", "--config", config});
    EXPECT_TRUE(r.status.exited && r.status.code == 1) << r.status.describe();
    EXPECT_NE((r.err + r.out).find("bogus_key"), std::string::npos) << r.err << r.out;
}

TEST_F(E2E, CheckConfigNamesAKeyOfTheWrongType) {
    std::string config =
        put_config("{\n  \"roots\": [\"" + m_root + "\"],\n  \"dry_run\": \"yes\"\n}\n");
    RunResult r = run({"--check-config", "--config", config});
    EXPECT_TRUE(r.status.exited && r.status.code == 1) << r.status.describe();
    EXPECT_NE((r.err + r.out).find("dry_run"), std::string::npos) << r.err << r.out;
}

TEST_F(E2E, UnknownFlagExitsOne) {
    RunResult r = run({"--no-such-flag"});
    EXPECT_TRUE(r.status.exited && r.status.code == 1) << r.status.describe();
    EXPECT_NE(r.err.find("--no-such-flag"), std::string::npos) << r.err;
}

TEST_F(E2E, BadDurationExitsOne) {
    RunResult r = run({"--once", "--root", m_root, "--interval", "soon"});
    EXPECT_TRUE(r.status.exited && r.status.code == 1) << r.status.describe() << "\n" << r.err;
}

TEST_F(E2E, VersionAndHelpExitZero) {
    RunResult v = run({"--version"});
    EXPECT_TRUE(v.status.exited && v.status.code == 0) << v.status.describe();
    EXPECT_FALSE(v.out.empty());
    RunResult h = run({"--help"});
    EXPECT_TRUE(h.status.exited && h.status.code == 0) << h.status.describe();
    EXPECT_NE(h.out.find("--once"), std::string::npos) << h.out;
}

TEST_F(E2E, OnceWithANonexistentRootExitsTwo) {
    RunResult r = run({"--once", "--json", "--root", m_dir + "/does-not-exist", "--tmux-socket",
                       m_tmux.socket_name()});
    EXPECT_TRUE(r.status.exited && r.status.code == 2) << r.status.describe() << "\n" << r.err;
    EXPECT_NE(r.err.find(m_dir + "/does-not-exist"), std::string::npos) << r.err;
}

TEST_F(E2E, DaemonWithANonexistentRootExitsTwo) {
    DaemonProcess& d = start({"--root", m_dir + "/does-not-exist", "--tmux-socket",
                              m_tmux.socket_name(), "--log-format", "json", "--interval", "200ms"});
    auto st = d.wait_exit();
    ASSERT_TRUE(st) << "agentlockd kept running with a root that cannot be used\n" << d.tail();
    EXPECT_TRUE(st->exited && st->code == 2) << st->describe() << "\n" << d.tail();
    EXPECT_EQ(notify().count_key("READY"), 0u);
}

} // namespace
} // namespace agentlock::e2e
