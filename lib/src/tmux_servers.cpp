#include <agentlock/tmux_servers.hpp>

#include <agentlock/sha256.hpp>

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace agentlock {

std::string gastown_town_label(std::string_view base_name) {
    std::string label;
    bool in_run = false; // inside a run of characters outside [a-z0-9-]
    for (const char raw : base_name) {
        char c = raw;
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        const bool kept = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        if (kept) {
            label += c;
            in_run = false;
        } else if (!in_run) {
            label += '-';
            in_run = true;
        }
    }
    const auto first = label.find_first_not_of('-');
    if (first == std::string::npos) {
        return "default";
    }
    const auto last = label.find_last_not_of('-');
    return label.substr(first, last - first + 1);
}

Result<std::string> gastown_socket_name(const std::string& town) {
    std::string base = town;
    while (base.size() > 1 && base.back() == '/') {
        base.pop_back();
    }
    const auto slash = base.rfind('/');
    if (slash != std::string::npos) {
        base.erase(0, slash + 1);
    }
    char resolved[PATH_MAX];
    if (::realpath(town.c_str(), resolved) == nullptr) {
        const int saved = errno;
        return io_error("realpath", town, saved);
    }
    return gastown_town_label(base) + "-" + sha256_hex(resolved).substr(0, 6);
}

std::string describe_tmux_server(const TmuxServer& server) {
    if (!server.socket_path.empty()) {
        return "-S " + server.socket_path;
    }
    if (!server.socket_name.empty()) {
        return "-L " + server.socket_name;
    }
    return "default";
}

std::string describe_tmux_server(const ServerRef& server) {
    if (!server.unresolved.empty()) {
        return "unresolved (" + server.unresolved + ")";
    }
    return describe_tmux_server(server.server);
}

TmuxFacts unresolved_tmux_facts(const ServerRef& server) {
    TmuxFacts facts;
    facts.state = TmuxState::unknown;
    facts.detail = "tmux server not named: " + server.unresolved;
    facts.server = describe_tmux_server(server);
    return facts;
}

SystemTmuxProbes::SystemTmuxProbes(std::chrono::milliseconds timeout, std::string tmux_binary)
    : m_timeout(timeout), m_binary(std::move(tmux_binary)) {}

TmuxProbe& SystemTmuxProbes::probe(const TmuxServer& server) {
    auto& slot = m_probes[ServerRef{server, {}}];
    if (!slot) {
        slot = std::make_unique<SystemTmuxProbe>(server, m_timeout, m_binary);
    }
    return *slot;
}

} // namespace agentlock
