#pragma once
// gastown's tmux socket name for a town, computed independently of the library, so that the
// tests of the library's derivation (and of the daemon finding a town's server by it) compare it
// with a reference rather than with itself.

#include "test_support.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <stdexcept>
#include <string>

namespace agentlock::test {

/// What `sha256sum` prints for `data`: its SHA-256 as 64 lowercase hex digits. `data` is written
/// to the file `scratch` first (replacing it), so that no shell quoting touches it.
inline std::string sha256sum_of(const std::string& scratch, const std::string& data) {
    write_file(scratch, data);
    auto r = run_command("sha256sum < '" + scratch + "'");
    if (r.status != 0 || r.out.size() < 64) {
        throw std::runtime_error("sha256sum failed");
    }
    return r.out.substr(0, 64);
}

/// gastown's socket name for `town`, "<label>-<hash>": the label is the town directory's name
/// lowercased, each run of other characters than a-z, 0-9 and '-' made one '-', '-' trimmed from
/// both ends ("default" when nothing is left), by std::regex; the hash is the first 6 hex digits
/// of sha256sum of the town's realpath. `scratch` is a file sha256sum_of may replace.
inline std::string gastown_socket_name(const std::string& town, const std::string& scratch) {
    std::string base = town.substr(town.rfind('/') + 1);
    std::transform(base.begin(), base.end(), base.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string label = std::regex_replace(base, std::regex("[^a-z0-9-]+"), "-");
    label.erase(0, label.find_first_not_of('-'));
    label.erase(label.find_last_not_of('-') + 1);
    if (label.empty()) {
        label = "default";
    }
    char resolved[PATH_MAX];
    if (::realpath(town.c_str(), resolved) == nullptr) {
        throw std::runtime_error("realpath " + town + ": " + std::strerror(errno));
    }
    return label + "-" + sha256sum_of(scratch, resolved).substr(0, 6);
}

} // namespace agentlock::test
