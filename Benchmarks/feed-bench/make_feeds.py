#!/usr/bin/env python3
"""Writes the feed-parsing benchmark's inputs into DIR: real-shaped feeds of three sizes.
  small.xml   a blog's RSS 2.0 feed, 10 entries with content:encoded (~15 KiB)
  medium.xml  an Atom 1.0 feed, 500 entries with HTML content (~700 KiB)
  large.xml   a podcast RSS 2.0 feed with iTunes and media tags, sized to 5 MiB
usage: make_feeds.py DIR"""
import html, os, random, sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rnd = random.Random(7)
W = ("the of and a to in is you that it he was for on are as with his they I at be this have from or one had by word "
     "but not what all were we when your can said there use an each which she do how their if will up other about out many "
     "then them these so some her would make like him into time has look two more write go see number no way could people").split()

def words(n):
    return " ".join(rnd.choice(W) for _ in range(n))

def para():
    return "<p>" + words(40) + " <a href=\"https://example.com/" + words(1) + "\">" + words(3) + "</a> " + words(30) + ".</p>"

def rss_item(i, big):
    body = "".join(para() for _ in range(6 if big else 3))
    x = (f"<item><title>{html.escape(words(7).capitalize())}</title><link>https://blog.example.com/{2026}/{i}/post</link>"
         f"<guid isPermaLink=\"false\">https://blog.example.com/?p={i}</guid>"
         f"<pubDate>Mon, {1 + i % 28:02d} Jun 2026 {i % 24:02d}:{i % 60:02d}:00 +0000</pubDate>"
         f"<dc:creator><![CDATA[{words(2).title()}]]></dc:creator>"
         + "".join(f"<category><![CDATA[{words(1)}]]></category>" for _ in range(3)) +
         f"<description><![CDATA[{words(50)} [&#8230;]]]></description>"
         f"<content:encoded><![CDATA[{body}]]></content:encoded>")
    if big:
        x += (f"<enclosure url=\"https://cdn.example.fm/ep{i}.mp3\" length=\"{30_000_000 + i}\" type=\"audio/mpeg\"/>"
              f"<itunes:duration>00:{i % 60:02d}:00</itunes:duration><itunes:explicit>false</itunes:explicit>"
              f"<itunes:summary>{html.escape(words(60))}</itunes:summary>"
              f"<media:content url=\"https://cdn.example.fm/ep{i}.mp3\" fileSize=\"{30_000_000 + i}\" type=\"audio/mpeg\"/>")
    return x + "</item>\n"

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Bench</title><link>https://blog.example.com/</link>'
        '<description>bench</description>\n')

with open(os.path.join(out, "small.xml"), "w") as f:
    f.write(HEAD + "".join(rss_item(i, False) for i in range(10)) + "</channel></rss>\n")

with open(os.path.join(out, "medium.xml"), "w") as f:
    f.write('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>Bench</title>'
            '<id>tag:bench</id><updated>2026-06-01T00:00:00Z</updated><author><name>Bench</name></author>\n')
    for i in range(500):
        f.write(f'<entry><id>tag:bench,2026:{i}</id><title type="html">{html.escape(words(6))}</title>'
                f'<link rel="alternate" type="text/html" href="/posts/{i}"/><published>2026-06-01T{i % 24:02d}:00:00Z</published>'
                f'<updated>2026-06-02T{i % 24:02d}:30:00+02:00</updated><author><name>{words(2)}</name></author>'
                f'<category term="{words(1)}"/><summary>{html.escape(words(30))}</summary>'
                f'<content type="html">{html.escape(para() + para())}</content></entry>\n')
    f.write("</feed>\n")

items, size, i = [], len(HEAD), 0
while size < 5 * 1024 * 1024:
    it = rss_item(i, True)
    items.append(it)
    size += len(it.encode())
    i += 1
with open(os.path.join(out, "large.xml"), "w") as f:
    f.write(HEAD + "".join(items) + "</channel></rss>\n")
for n in ("small.xml", "medium.xml", "large.xml"):
    print(n, os.path.getsize(os.path.join(out, n)))
