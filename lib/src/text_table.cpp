#include <agentlock/text_table.hpp>

#include <agentlock/text.hpp>

#include <algorithm>

namespace agentlock {

std::size_t display_width(std::string_view text) {
    std::size_t width = 0;
    for (std::size_t i = 0; i < text.size(); ++width) {
        i += std::max<std::size_t>(1, utf8_sequence_length(text, i));
    }
    return width;
}

std::string format_table(const std::vector<std::vector<TableCell>>& rows, bool colour) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows) {
        if (widths.size() < row.size()) {
            widths.resize(row.size(), 0);
        }
        for (std::size_t c = 0; c < row.size(); ++c) {
            widths[c] = std::max(widths[c], display_width(row[c].text));
        }
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const TableCell& cell = row[c];
            if (colour && !cell.style.empty()) {
                line += "\x1b[" + cell.style + "m" + cell.text + "\x1b[0m";
            } else {
                line += cell.text;
            }
            if (c + 1 < row.size()) {
                line.append(widths[c] - display_width(cell.text) + 2, ' ');
            }
        }
        out += line;
        out += '\n';
    }
    return out;
}

} // namespace agentlock
