#!/usr/bin/env python3
"""Checks of the source tree that no compiler makes.

  check-tree.py potfiles SRCDIR   every file with translatable strings is in po/POTFILES,
                                  and every file listed there exists
  check-tree.py po-complete SRCDIR  every string of the files in POTFILES has its French in
                                  po/fr.po (no untranslated, no fuzzy message)
  check-tree.py icons SRCDIR      the app icon (128x128) and its symbolic (16x16, one
                                  colour) are well-formed SVG

Prints one line per problem and exits 1 if there is any.
"""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

MARKERS = {
    '.c': re.compile(r'\b(?:_|N_|C_|NC_)\s*\(\s*"|g_dngettext\s*\(|ngettext\s*\('),
    '.ui': re.compile(r'translatable="yes"'),
    '.in': re.compile(r'.'),  # desktop and metainfo templates are translated whole
}
SCANNED = ('app', 'ui', 'data', 'sync')


def potfiles(src):
    listed = set()
    problems = []
    with open(os.path.join(src, 'po', 'POTFILES'), encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                listed.add(line)
                if not os.path.exists(os.path.join(src, line)):
                    problems.append(f'po/POTFILES lists {line}, which does not exist')
    for top in SCANNED:
        for root, dirs, files in os.walk(os.path.join(src, top)):
            dirs[:] = [d for d in dirs if not d.startswith(('build', '.'))]
            for name in files:
                ext = os.path.splitext(name)[1]
                if ext not in MARKERS or (ext == '.in' and not re.search(r'\.(desktop|xml)\.in$', name)):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, src)
                with open(path, encoding='utf-8', errors='replace') as f:
                    if MARKERS[ext].search(f.read()) and rel not in listed:
                        problems.append(f'{rel} has translatable strings but is not in po/POTFILES')
    return problems


def po_complete(src):
    """Every string of the files in POTFILES, extracted afresh, has its French."""
    import tempfile
    po = os.path.join(src, 'po', 'fr.po')
    with tempfile.TemporaryDirectory() as tmp:
        pot = os.path.join(tmp, 'relais.pot')
        merged = os.path.join(tmp, 'fr.po')
        xgettext = subprocess.run(
            ['xgettext', '--files-from=' + os.path.join(src, 'po', 'POTFILES'),
             '--directory=' + src, '--from-code=UTF-8', '--add-comments',
             '--keyword=_', '--keyword=N_', '--keyword=C_:1c,2', '--keyword=NC_:1c,2',
             '--keyword=g_dngettext:2,3', '--keyword=ngettext:1,2', '--output=' + pot],
            capture_output=True, text=True)
        if xgettext.returncode != 0:
            return [f'xgettext failed: {xgettext.stderr.strip()}']
        msgmerge = subprocess.run(['msgmerge', '--quiet', '--no-fuzzy-matching', po, pot, '-o', merged],
                                  capture_output=True, text=True)
        if msgmerge.returncode != 0:
            return [f'msgmerge failed: {msgmerge.stderr.strip()}']
        out = subprocess.run(['msgfmt', '--check', '--statistics', '-o', os.devnull, merged],
                             capture_output=True, text=True)
    stats = (out.stdout + out.stderr).strip()
    if out.returncode != 0 or 'untranslated' in stats or 'fuzzy' in stats:
        return [f'po/fr.po: {stats}']
    return []


def icons(src):
    problems = []
    base = os.path.join(src, 'data', 'icons', 'hicolor')
    for rel, size, symbolic in (('scalable/apps/fr.spie.Relais.svg', '128', False),
                                ('symbolic/apps/fr.spie.Relais-symbolic.svg', '16', True)):
        path = os.path.join(base, rel)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            problems.append(f'{rel}: {e}')
            continue
        if root.tag != '{http://www.w3.org/2000/svg}svg':
            problems.append(f'{rel}: the root element is not <svg>')
        if root.get('width') != size or root.get('height') != size:
            problems.append(f'{rel}: should be {size}x{size}')
        if symbolic:
            colours = set()
            for el in root.iter():
                for attr in ('fill', 'stroke'):
                    value = el.get(attr)
                    if value and value not in ('none',):
                        colours.add(value.lower())
            if len(colours) > 1:
                problems.append(f'{rel}: a symbolic icon has one colour, not {sorted(colours)}')
    return problems


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ('potfiles', 'po-complete', 'icons'):
        print(__doc__, file=sys.stderr)
        return 2
    check, src = sys.argv[1], sys.argv[2]
    problems = {'potfiles': potfiles, 'po-complete': po_complete, 'icons': icons}[check](src)
    for p in problems:
        print(p)
    if not problems:
        print(f'{check}: ok')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
