#!/usr/bin/env bash
# Screenshots of the example apps for docs/ui.md, taken under a virtual X server.
#
#   bash scripts/screenshots.sh            # from the repository root, with the venv active
#
# Installs what is missing (Debian): Xvfb, fonts, and the X/GL libraries PySide6's xcb
# platform plugin loads; then runs each example with --screenshot under xvfb-run. Each app
# starts the built-in emulator, syncs in the background and is grabbed after 8 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

missing=()
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xvfb-run >/dev/null 2>&1 || missing+=(xvfb)
fc-list 2>/dev/null | grep -i dejavu >/dev/null || missing+=(fonts-dejavu-core fontconfig)
# The libraries Qt's xcb plugin needs (QT_DEBUG_PLUGINS=1 names the one it cannot load).
for lib in libxkbcommon-x11.so.0 libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 \
           libxcb-shape.so.0 libxcb-render-util.so.0 libEGL.so.1 libGL.so.1 \
           libfontconfig.so.1 libdbus-1.so.3 libxcb-xkb.so.1 libxcb-randr.so.0 \
           libxcb-image.so.0 libxcb-xinerama.so.0; do
    # (grep reads all: with pipefail, grep -q would fail the pipe by closing it early)
    ldconfig -p | grep "$lib" >/dev/null || missing+=("$lib")
done
if ((${#missing[@]})); then
    declare -A package=(
        [libxkbcommon-x11.so.0]=libxkbcommon-x11-0 [libxcb-cursor.so.0]=libxcb-cursor0
        [libxcb-icccm.so.4]=libxcb-icccm4 [libxcb-keysyms.so.1]=libxcb-keysyms1
        [libxcb-shape.so.0]=libxcb-shape0 [libxcb-render-util.so.0]=libxcb-render-util0
        [libEGL.so.1]=libegl1 [libGL.so.1]=libgl1 [libfontconfig.so.1]=libfontconfig1
        [libdbus-1.so.3]=libdbus-1-3 [libxcb-xkb.so.1]=libxcb-xkb1
        [libxcb-randr.so.0]=libxcb-randr0 [libxcb-image.so.0]=libxcb-image0
        [libxcb-xinerama.so.0]=libxcb-xinerama0
    )
    packages=()
    for item in "${missing[@]}"; do packages+=("${package[$item]:-$item}"); done
    echo "installing: ${packages[*]}"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
fi

mkdir -p docs/img
shoot() {  # example file, output PNG
    if [ ! -f "$1" ]; then
        echo "skipping $1: not there yet"
        return
    fi
    echo "$1 -> $2"
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1280x800x24" \
        "$PYTHON" "$1" --screenshot "$2" --after 8
}
shoot examples/qt_browser.py docs/qt_browser.png
shoot examples/kivy_browser.py docs/img/kivy_browser.png
