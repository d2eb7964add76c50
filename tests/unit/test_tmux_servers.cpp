// A tmux server per root: the roots' config entries, gastown's socket names, SHA-256, and passes
// and re-checks that judge each lock against its own root's server, asked once per pass.
#include "fakes.hpp"
#include "gastown_socket.hpp"
#include "test_support.hpp"

#include <agentlock/config.hpp>
#include <agentlock/pass.hpp>
#include <agentlock/sha256.hpp>
#include <agentlock/tmux_servers.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace agentlock {
namespace {

using test::TempDir;

// gastown's socket name for `town`, by the independent reference (tests/support).
std::string expected_gastown_name(const TempDir& dir, const std::string& town) {
    return test::gastown_socket_name(town, dir.sub("sha-input"));
}

TEST(Sha256, MatchesTheStandardVectorsAndSha256sumAtEveryBlockBoundary) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    TempDir dir;
    for (std::size_t n : {1u, 54u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 127u, 128u, 200u}) {
        std::string data;
        for (std::size_t i = 0; i < n; ++i) {
            data += static_cast<char>((i * 37 + n) % 251); // every byte value, NUL included
        }
        EXPECT_EQ(sha256_hex(data), test::sha256sum_of(dir.sub("sha-input"), data))
            << n << " bytes";
    }
}

// Sha256 fed in pieces, as a file is read a buffer at a time: every split of the message gives
// the digest of the whole, whatever the pieces' sizes against the 64-byte blocks.
TEST(Sha256, StreamingInPiecesGivesTheDigestOfTheWhole) {
    EXPECT_EQ(Sha256().hex_digest(),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const std::string abc_digest =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    Sha256 abc;
    abc.update("a");
    abc.update("");
    abc.update("bc");
    EXPECT_EQ(abc.hex_digest(), abc_digest);
    EXPECT_EQ(abc.digest(), sha256("abc"));

    // A digest does not end the message: it goes on, and the next digest covers all of it.
    Sha256 going_on;
    going_on.update("ab");
    EXPECT_EQ(going_on.hex_digest(), sha256_hex("ab"));
    going_on.update("c");
    EXPECT_EQ(going_on.hex_digest(), abc_digest);

    const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (std::size_t split = 0; split <= two_blocks.size(); ++split) {
        Sha256 h;
        h.update(std::string_view(two_blocks).substr(0, split));
        h.update(std::string_view(two_blocks).substr(split));
        EXPECT_EQ(h.hex_digest(),
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
            << "split at " << split;
    }

    // 1,000,000 x 'a' in pieces of one byte, of a block less one, of a block, of a block and one,
    // and of many blocks.
    const std::string million(1000000, 'a');
    for (std::size_t piece : {1u, 63u, 64u, 65u, 65536u}) {
        Sha256 h;
        for (std::size_t at = 0; at < million.size(); at += piece) {
            h.update(std::string_view(million).substr(at, piece));
        }
        EXPECT_EQ(h.hex_digest(),
                  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
            << "pieces of " << piece;
    }
}

TEST(GastownSocket, LabelsLowercaseReplaceRunsAndTrim) {
    EXPECT_EQ(gastown_town_label("gt"), "gt");
    EXPECT_EQ(gastown_town_label("My Gas Town"), "my-gas-town");
    EXPECT_EQ(gastown_town_label("Town_2.0  (Prod)"), "town-2-0-prod");
    EXPECT_EQ(gastown_town_label("--a--b--"), "a--b") << "hyphens are kept, only trimmed";
    EXPECT_EQ(gastown_town_label("__x__"), "x");
    EXPECT_EQ(gastown_town_label("!!! ###"), "default");
    EXPECT_EQ(gastown_town_label(""), "default");
    EXPECT_EQ(gastown_town_label("caf\xc3\xa9 t\xc3\xb6wn"), "caf-t-wn")
        << "a multi-byte character is one run, as Go's regexp sees one rune";
}

TEST(GastownSocket, NamesATownWithSpacesAndCapitalsASymlinkedTownAndAnAllSymbolsName) {
    TempDir dir;
    const std::string town = dir.sub("My Gas Town");
    test::make_dirs(town);
    auto name = gastown_socket_name(town);
    ASSERT_TRUE(name) << name.error().message;
    EXPECT_EQ(*name, expected_gastown_name(dir, town));
    EXPECT_EQ(name->rfind("my-gas-town-", 0), 0u) << *name;
    EXPECT_EQ(name->size(), std::string("my-gas-town-").size() + 6);
    EXPECT_EQ(*gastown_socket_name(town + "/"), *name) << "a trailing slash changes nothing";

    // A symlink to the town: its own base name, the hash of the town's real path.
    const std::string link = dir.sub("Link To Town");
    ASSERT_EQ(::symlink(town.c_str(), link.c_str()), 0) << std::strerror(errno);
    auto linked = gastown_socket_name(link);
    ASSERT_TRUE(linked) << linked.error().message;
    EXPECT_EQ(*linked, expected_gastown_name(dir, link));
    EXPECT_EQ(linked->substr(linked->size() - 6), name->substr(name->size() - 6));
    EXPECT_EQ(linked->rfind("link-to-town-", 0), 0u) << *linked;

    const std::string symbols = dir.sub("!!! ###");
    test::make_dirs(symbols);
    auto plain = gastown_socket_name(symbols);
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(*plain, expected_gastown_name(dir, symbols));
    EXPECT_EQ(plain->rfind("default-", 0), 0u) << *plain;

    auto missing = gastown_socket_name(dir.sub("no such town"));
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("realpath"), std::string::npos)
        << missing.error().message;
}

// ---------------------------------------------------------------------------------------------
// The config

Result<Config> parse(const std::string& json) {
    return parse_config(json, "/etc/x.json");
}

std::string error_of(const std::string& json) {
    auto c = parse(json);
    return c ? std::string("(accepted)") : c.error().message;
}

TEST(RootServersConfig, RootsMayBePathsOrObjectsNamingTheirServer) {
    TempDir dir;
    const std::string town = dir.sub("Gas Town");
    test::make_dirs(town);
    auto c = parse(R"({"tmux_socket": "fleet", "roots": ["/srv/plain",
        {"path": "/srv/a", "tmux_socket": "alpha"},
        {"path": "/srv/b", "tmux_socket_path": "/run/b.sock"},
        {"path": ")" +
                   town + R"(", "gastown": true},
        {"path": "/srv/also-plain"}, {"path": "/srv/not-gastown", "gastown": false}]})");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->roots, (std::vector<std::string>{"/srv/plain", "/srv/a", "/srv/b", town,
                                                  "/srv/also-plain", "/srv/not-gastown"}));
    EXPECT_EQ(c->root_tmux.size(), 3u);
    ASSERT_TRUE(finish_config(*c));

    const PassOptions o = pass_options_of(*c);
    ASSERT_EQ(o.root_servers.size(), 6u);
    EXPECT_EQ(describe_tmux_server(o.root_servers[0]), "-L fleet");
    EXPECT_EQ(describe_tmux_server(o.root_servers[1]), "-L alpha");
    EXPECT_EQ(describe_tmux_server(o.root_servers[2]), "-S /run/b.sock");
    EXPECT_EQ(describe_tmux_server(o.root_servers[3]), "-L " + expected_gastown_name(dir, town));
    EXPECT_EQ(describe_tmux_server(o.root_servers[4]), "-L fleet");
    EXPECT_EQ(describe_tmux_server(o.root_servers[5]), "-L fleet");

    std::string fields;
    for (const auto& [k, v] : config_fields(*c)) {
        if (k == "root_tmux") {
            fields = v;
        }
    }
    EXPECT_EQ(fields, "/srv/a=-L alpha,/srv/b=-S /run/b.sock," + town + "=gastown -L " +
                          expected_gastown_name(dir, town));
}

TEST(RootServersConfig, AGastownTownThatDoesNotResolveHasAnUnresolvedServer) {
    auto c = parse(R"({"roots": [{"path": "/nonexistent/agentlock/town", "gastown": true}]})");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(finish_config(*c));
    const ServerRef s = tmux_server_of_root(*c, "/nonexistent/agentlock/town");
    EXPECT_NE(s.unresolved.find("realpath /nonexistent/agentlock/town"), std::string::npos)
        << s.unresolved;
    const TmuxFacts f = unresolved_tmux_facts(s);
    EXPECT_EQ(f.state, TmuxState::unknown);
    EXPECT_NE(f.detail.find(s.unresolved), std::string::npos);
}

TEST(RootServersConfig, BadEntriesAreErrorsNamingTheKeyTheRootAndTheFile) {
    struct Case {
        std::string json;
        std::vector<std::string> words;
    };
    for (const auto& [json, words] : std::vector<Case>{
             {R"({"roots": [{"path": "/t", "tmux_sockt": "x"}]})",
              {"\"roots\"", "\"/t\"", "\"tmux_sockt\"", "unknown", "gastown"}},
             {R"({"roots": [{"path": "/t", "tmux_socket": 3}]})",
              {"\"/t\"", "\"tmux_socket\"", "a string", "a number"}},
             {R"({"roots": [{"path": "/t", "tmux_socket_path": ""}]})",
              {"\"/t\"", "\"tmux_socket_path\"", "empty"}},
             {R"({"roots": [{"path": "/t", "gastown": "yes"}]})",
              {"\"/t\"", "\"gastown\"", "true or false"}},
             {R"({"roots": [{"path": "/t", "tmux_socket": "a", "tmux_socket_path": "/b"}]})",
              {"\"/t\"", "\"tmux_socket\"", "\"tmux_socket_path\"", "not several"}},
             {R"({"roots": [{"path": "/t", "tmux_socket": "a", "gastown": true}]})",
              {"\"/t\"", "\"gastown\"", "not several"}},
             {R"({"roots": [{"path": "/t", "tmux_socket": "a/b"}]})",
              {"\"/t\"", "\"tmux_socket\"", "'/'"}},
             {R"({"roots": [{"tmux_socket": "a"}]})", {"\"roots\"", "\"path\""}},
             {R"({"roots": [{"path": 7}]})", {"\"path\"", "a number"}},
             {R"({"roots": [3]})", {"\"roots\"", "a number"}},
             {R"({"roots": {"path": "/t"}})", {"\"roots\"", "an object"}},
             {R"({"roots": ["/t", {"path": "/t", "tmux_socket": "a"}]})",
              {"\"/t\"", "twice", "different tmux servers"}},
         }) {
        const std::string why = error_of(json);
        EXPECT_EQ(why.rfind("config /etc/x.json: key \"roots\"", 0), 0u) << json << "\n" << why;
        for (const auto& w : words) {
            EXPECT_NE(why.find(w), std::string::npos) << json << "\nlacks " << w << ":\n" << why;
        }
    }
    EXPECT_EQ(error_of(R"({"roots": [{"path": "/t", "tmux_socket": "a"},
                                     {"path": "/t", "tmux_socket": "a"}]})"),
              "(accepted)")
        << "the same root twice with the same server is only a duplicate";
}

TEST(RootServersConfig, FinishingMakesThemAbsoluteAndCatchesTheSameRootWithTwoServers) {
    auto c = parse(R"({"roots": [{"path": "rel/town/", "tmux_socket": "a"}, "/srv/x"]})");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(finish_config(*c));
    const std::string absolute = std::filesystem::current_path().string() + "/rel/town";
    EXPECT_EQ(c->roots.front(), absolute);
    ASSERT_EQ(c->root_tmux.count(absolute), 1u);
    EXPECT_EQ(c->root_tmux.at(absolute).tmux_socket, "a");

    auto twice = parse(R"({"roots": [{"path": "/srv/t/", "tmux_socket": "a"}, "/srv/t"]})");
    ASSERT_TRUE(twice) << twice.error().message;
    Status s = finish_config(*twice);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().path, "roots");
    EXPECT_NE(s.error().message.find("/srv/t is listed twice with different tmux servers"),
              std::string::npos)
        << s.error().message;
}

TEST(RootServersConfig, RootFlagsArePlainAndSocketFlagsLeaveRootServersAlone) {
    auto c = parse(R"({"roots": [{"path": "/srv/a", "tmux_socket": "alpha"}, "/srv/b"]})");
    ASSERT_TRUE(c);
    Config socket_flag = *c;
    ConfigOverrides o;
    o.tmux_socket = "flag";
    apply_overrides(socket_flag, o);
    ASSERT_TRUE(finish_config(socket_flag));
    EXPECT_EQ(describe_tmux_server(tmux_server_of_root(socket_flag, "/srv/a")), "-L alpha");
    EXPECT_EQ(describe_tmux_server(tmux_server_of_root(socket_flag, "/srv/b")), "-L flag");

    Config root_flag = *c;
    ConfigOverrides r;
    r.roots = std::vector<std::string>{"/srv/a"};
    apply_overrides(root_flag, r);
    ASSERT_TRUE(finish_config(root_flag));
    EXPECT_TRUE(root_flag.root_tmux.empty());
    EXPECT_EQ(describe_tmux_server(tmux_server_of_root(root_flag, "/srv/a")), "default");
}

TEST(RootServersConfig, AReloadReportsAChangedRootServer) {
    auto before = parse(R"({"roots": [{"path": "/srv/a", "tmux_socket": "alpha"}]})");
    auto after = parse(R"({"roots": [{"path": "/srv/a", "tmux_socket": "beta"}]})");
    ASSERT_TRUE(before && after);
    ASSERT_TRUE(finish_config(*before) && finish_config(*after));
    const Fields changes = config_changes(*before, *after);
    ASSERT_GE(changes.size(), 2u);
    EXPECT_EQ(changes[0], (std::pair<std::string, std::string>{"changed", "root_tmux"}));
    EXPECT_EQ(changes[1], (std::pair<std::string, std::string>{"root_tmux", "/srv/a=-L beta"}));
    EXPECT_EQ(config_changes(*before, *before)[0].second, "none");
}

// ---------------------------------------------------------------------------------------------
// Passes and re-checks against several servers

// A stream socket that accepts connections into its backlog and never answers: a tmux client
// connecting to it waits until its time-out (a hanging server). Closed and unlinked at the end.
class HangingSocket {
public:
    explicit HangingSocket(std::string path) : m_path(std::move(path)) {
        m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (m_fd < 0 || m_path.size() >= sizeof addr.sun_path) {
            throw std::runtime_error("socket " + m_path);
        }
        std::memcpy(addr.sun_path, m_path.c_str(), m_path.size() + 1);
        if (::bind(m_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(m_fd, 16) != 0) {
            throw std::runtime_error("bind/listen " + m_path + ": " + std::strerror(errno));
        }
    }
    ~HangingSocket() {
        ::close(m_fd);
        ::unlink(m_path.c_str());
    }
    HangingSocket(const HangingSocket&) = delete;
    HangingSocket& operator=(const HangingSocket&) = delete;
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
    int m_fd = -1;
};

// A fake probe per server, counting the queries each gets.
class FakeProbes final : public TmuxProbes {
public:
    TmuxProbe& probe(const TmuxServer& server) override {
        return m_probes[describe_tmux_server(server)];
    }
    test::FakeTmuxProbe& of(const std::string& described) { return m_probes[described]; }

private:
    std::map<std::string, test::FakeTmuxProbe> m_probes;
};

class SeveralServersTest : public ::testing::Test {
protected:
    std::string root(const std::string& name) const { return m_dir.sub(name); }
    std::string lock_of(const std::string& r, const std::string& worker) const {
        return root(r) + "/" + worker + "/.runtime/agent.lock";
    }
    // A gastown-style lock: its PID (gt prime's) dead, its session the agent's pane.
    void put_pane_lock(const std::string& r, const std::string& worker, const std::string& pane) {
        test::write_file(lock_of(r, worker),
                         test::go_lock_json(test::dead_pid(), test::now_rfc3339(), pane,
                                            test::local_hostname()));
    }
    static const LockRecord* find(const PassReport& report, const std::string& lock_path) {
        for (const auto& rec : report.locks) {
            if (rec.lock_path == lock_path) {
                return &rec;
            }
        }
        return nullptr;
    }
    static ServerRef named(const std::string& name) { return ServerRef{{name, ""}, {}}; }
    static ServerRef at_path(const std::string& path) { return ServerRef{{"", path}, {}}; }

    TempDir m_dir;
    test::TmuxServerFixture m_a;
    test::TmuxServerFixture m_b;
    SystemProcessProbe m_processes;
    HostFacts m_host = read_host_facts();
};

TEST_F(SeveralServersTest, EachLockIsJudgedAgainstItsOwnRootsServer) {
    // Both servers number their panes from %0: only the root's own server says whether %1 lives.
    m_a.new_session("one");
    m_a.new_session("two");
    m_b.new_session("one");
    ASSERT_EQ(m_a.pane_of("two"), "%1");
    ASSERT_EQ(m_b.pane_of("one"), "%0");
    put_pane_lock("a", "w1", "%1");
    put_pane_lock("b", "w0", "%0");
    put_pane_lock("b", "w1", "%1");

    PassOptions o;
    o.roots = {root("a"), root("b")};
    o.root_servers = {named(m_a.socket_name()), named(m_b.socket_name())};
    SystemTmuxProbes probes(std::chrono::seconds(3));
    const PassReport r = run_pass(o, m_processes, probes, m_host);

    ASSERT_EQ(r.tmux_servers.size(), 2u);
    EXPECT_EQ(describe_tmux_server(r.tmux_servers[0].server), "-L " + m_a.socket_name());
    EXPECT_EQ(r.tmux_servers[0].roots, std::vector<std::string>{root("a")});
    EXPECT_EQ(r.tmux_servers[0].facts.state, TmuxState::ok) << r.tmux_servers[0].facts.detail;
    EXPECT_EQ(r.tmux_servers[1].roots, std::vector<std::string>{root("b")});
    EXPECT_EQ(r.tmux_servers[1].facts.state, TmuxState::ok) << r.tmux_servers[1].facts.detail;
    EXPECT_EQ(r.tmux.state, TmuxState::ok);
    EXPECT_EQ(r.tmux.pane_ids, r.tmux_servers[0].facts.pane_ids) << "tmux is the first server";

    const LockRecord* a1 = find(r, lock_of("a", "w1"));
    const LockRecord* b0 = find(r, lock_of("b", "w0"));
    const LockRecord* b1 = find(r, lock_of("b", "w1"));
    ASSERT_TRUE(a1 && b0 && b1);
    EXPECT_EQ(a1->judgement.verdict, Verdict::held_by_session) << a1->judgement.reason;
    EXPECT_EQ(a1->tmux_server, 0u);
    EXPECT_TRUE(test::exists(lock_of("a", "w1")));
    EXPECT_EQ(b0->judgement.verdict, Verdict::held_by_session) << b0->judgement.reason;
    EXPECT_EQ(b1->judgement.verdict, Verdict::stale) << b1->judgement.reason;
    EXPECT_EQ(b1->action, LockAction::removed);
    EXPECT_EQ(b1->tmux_server, 1u);
    EXPECT_FALSE(test::exists(lock_of("b", "w1")));

    // The same judgements one worker at a time, as the daemon's re-checks make them.
    put_pane_lock("b", "w1", "%1");
    const WorkerCheck kept = check_worker(root("a") + "/w1", o, m_processes, probes, m_host);
    EXPECT_EQ(kept.tmux_server, named(m_a.socket_name()));
    EXPECT_EQ(kept.record.judgement.verdict, Verdict::held_by_session);
    const WorkerCheck gone = check_worker(root("b") + "/w1", o, m_processes, probes, m_host);
    EXPECT_EQ(gone.tmux_server, named(m_b.socket_name()));
    EXPECT_EQ(gone.record.action, LockAction::removed) << gone.record.judgement.reason;
}

TEST_F(SeveralServersTest, RootsSharingAServerShareItsOneAnswer) {
    for (const auto* r : {"a", "b", "c", "d"}) {
        test::make_dirs(root(r));
    }
    PassOptions o;
    o.roots = {root("a"), root("b"), root("c"), root("d")};
    o.root_servers = {named("x"), named("y"), named("x"), ServerRef{}};
    FakeProbes probes;
    probes.of("-L x").facts = test::tmux_ok({"s"});
    probes.of("-L y").facts = test::tmux_state(TmuxState::no_server);
    probes.of("default").facts = test::tmux_state(TmuxState::unknown, "refused");
    const PassReport r = run_pass(o, m_processes, probes, m_host);
    EXPECT_EQ(probes.of("-L x").calls, 1);
    EXPECT_EQ(probes.of("-L y").calls, 1);
    EXPECT_EQ(probes.of("default").calls, 1);
    ASSERT_EQ(r.tmux_servers.size(), 3u);
    EXPECT_EQ(r.tmux_servers[0].roots, (std::vector<std::string>{root("a"), root("c")}));
    EXPECT_EQ(r.tmux_servers[1].roots, std::vector<std::string>{root("b")});
    EXPECT_EQ(r.tmux_servers[2].roots, std::vector<std::string>{root("d")});
    EXPECT_EQ(r.tmux_servers[2].facts.detail, "refused");
}

TEST_F(SeveralServersTest, AServerWithNoServerRunningFreesOnlyItsOwnRootsLocks) {
    m_a.new_session("one");
    m_b.new_session("one");
    put_pane_lock("a", "w", "%0");
    put_pane_lock("b", "w", "%0");
    m_b.kill_server();
    // For a moment after kill-server clients hear "server exited unexpectedly" (unknown).
    ASSERT_TRUE(test::wait_until([&] {
        return test::run_command("tmux -L '" + m_b.socket_name() + "' list-sessions 2>&1")
                   .out.find("no server running") != std::string::npos;
    }));

    PassOptions o;
    o.roots = {root("a"), root("b")};
    o.root_servers = {named(m_a.socket_name()), named(m_b.socket_name())};
    SystemTmuxProbes probes(std::chrono::seconds(3));
    const PassReport r = run_pass(o, m_processes, probes, m_host);
    ASSERT_EQ(r.tmux_servers.size(), 2u);
    EXPECT_EQ(r.tmux_servers[1].facts.state, TmuxState::no_server)
        << r.tmux_servers[1].facts.detail;
    EXPECT_TRUE(test::exists(lock_of("a", "w")));
    EXPECT_FALSE(test::exists(lock_of("b", "w")));
    EXPECT_EQ(find(r, lock_of("a", "w"))->judgement.verdict, Verdict::held_by_session);
}

TEST_F(SeveralServersTest, AHangingServerMakesOnlyItsOwnRootsLocksUnknown) {
    m_a.new_session("one");
    HangingSocket hanging(m_dir.sub("hang.sock"));
    put_pane_lock("a", "held", "%0");
    put_pane_lock("a", "gone", "%5");
    put_pane_lock("b", "held", "%0");
    put_pane_lock("b", "gone", "%5");

    PassOptions o;
    o.roots = {root("b"), root("a")};
    o.root_servers = {at_path(hanging.path()), named(m_a.socket_name())};
    SystemTmuxProbes probes(std::chrono::milliseconds(300));
    const PassReport r = run_pass(o, m_processes, probes, m_host);
    ASSERT_EQ(r.tmux_servers.size(), 2u);
    EXPECT_EQ(r.tmux_servers[0].facts.state, TmuxState::unknown);
    EXPECT_EQ(r.tmux.state, TmuxState::unknown) << "tmux is the first root's server";
    EXPECT_EQ(r.tmux_servers[1].facts.state, TmuxState::ok);
    for (const auto* w : {"held", "gone"}) {
        const LockRecord* rec = find(r, lock_of("b", w));
        ASSERT_TRUE(rec);
        EXPECT_EQ(rec->judgement.verdict, Verdict::unknown) << rec->judgement.reason;
        EXPECT_TRUE(test::exists(lock_of("b", w)));
    }
    EXPECT_EQ(find(r, lock_of("a", "held"))->judgement.verdict, Verdict::held_by_session);
    EXPECT_TRUE(test::exists(lock_of("a", "held")));
    EXPECT_EQ(find(r, lock_of("a", "gone"))->action, LockAction::removed);
    EXPECT_FALSE(test::exists(lock_of("a", "gone")));
}

TEST_F(SeveralServersTest, AnUnresolvedServerIsNeverAskedAndKeepsItsRootsSessionLocks) {
    put_pane_lock("a", "w", "%0");
    PassOptions o;
    o.roots = {root("a")};
    o.root_servers = {ServerRef{{}, "gastown socket name: realpath /gone: No such file"}};
    FakeProbes probes;
    const PassReport r = run_pass(o, m_processes, probes, m_host);
    EXPECT_EQ(probes.of("default").calls, 0);
    ASSERT_EQ(r.tmux_servers.size(), 1u);
    EXPECT_EQ(r.tmux_servers[0].facts.state, TmuxState::unknown);
    EXPECT_NE(r.tmux_servers[0].facts.detail.find("realpath /gone"), std::string::npos);
    EXPECT_EQ(find(r, lock_of("a", "w"))->judgement.verdict, Verdict::unknown);
    EXPECT_TRUE(test::exists(lock_of("a", "w")));
}

} // namespace
} // namespace agentlock
