#pragma once
// The tmux servers of a fleet: how a server is named for a root (a socket named in the config,
// or a gastown town's own socket, derived from the town's path), and a probe per server, so
// that each server is asked once however many roots share it.

#include <agentlock/result.hpp>
#include <agentlock/tmux_probe.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>

namespace agentlock {

/// gastown's socket label for a town's base name: lowercased, each run of characters outside
/// [a-z0-9-] replaced by one '-', '-' trimmed at both ends; "default" when nothing is left.
std::string gastown_town_label(std::string_view base_name);

/// gastown's tmux socket name for the town at `town`, an absolute path: the label of its base
/// name (as given: a symlink's own name), '-', and the first 6 hex digits of the SHA-256 of the
/// town's canonical path (realpath: symlinks resolved). An io Error when realpath fails.
Result<std::string> gastown_socket_name(const std::string& town);

/// A tmux server as a pass uses it: how to reach it, or why it could not be named (a gastown
/// town whose path does not resolve). An unresolved server is never asked: its state is
/// unknown, with `unresolved` as tmux's detail, so that no lock is removed for want of it.
struct ServerRef {
    TmuxServer server;
    std::string unresolved;

    friend bool operator==(const ServerRef& a, const ServerRef& b) {
        return std::tie(a.server.socket_path, a.server.socket_name, a.unresolved) ==
               std::tie(b.server.socket_path, b.server.socket_name, b.unresolved);
    }
    friend bool operator<(const ServerRef& a, const ServerRef& b) {
        return std::tie(a.server.socket_path, a.server.socket_name, a.unresolved) <
               std::tie(b.server.socket_path, b.server.socket_name, b.unresolved);
    }
};

/// "-L NAME", "-S PATH" or "default" (tmux's default server).
std::string describe_tmux_server(const TmuxServer& server);
/// describe_tmux_server of its server, or "unresolved (WHY)".
std::string describe_tmux_server(const ServerRef& server);

/// The answer of a server that could not be named: unknown, saying why.
TmuxFacts unresolved_tmux_facts(const ServerRef& server);

/// The probes of a pass, one per server.
class TmuxProbes {
public:
    virtual ~TmuxProbes() = default;
    /// The probe that asks `server` (the same one each time for the same server).
    virtual TmuxProbe& probe(const TmuxServer& server) = 0;
};

/// A SystemTmuxProbe for each server, made when it is first asked for.
class SystemTmuxProbes final : public TmuxProbes {
public:
    explicit SystemTmuxProbes(std::chrono::milliseconds timeout = std::chrono::seconds(3),
                              std::string tmux_binary = "tmux");
    TmuxProbe& probe(const TmuxServer& server) override;

private:
    std::chrono::milliseconds m_timeout;
    std::string m_binary;
    std::map<ServerRef, std::unique_ptr<SystemTmuxProbe>> m_probes;
};

/// One probe for every server: for callers that know a single server (and tests' fakes).
class OneTmuxProbe final : public TmuxProbes {
public:
    explicit OneTmuxProbe(TmuxProbe& probe) : m_probe(probe) {}
    TmuxProbe& probe(const TmuxServer&) override { return m_probe; }

private:
    TmuxProbe& m_probe;
};

} // namespace agentlock
