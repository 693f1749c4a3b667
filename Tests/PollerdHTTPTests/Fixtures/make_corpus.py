#!/usr/bin/env python3
"""Writes the feed corpus: feeds shaped like real ones (blogs, news sites, podcasts, forges,
planets), each NAME.xml|json beside NAME.expected.json, the entries it must yield in document
order. The expected values are built from the same data the feed is rendered from, so they are
right by construction, not read back from pollerd's parser. A `.meta.json` gives the base URL and
the HTTP Content-Type a test passes along. Deterministic: run it again and nothing changes.

Expected fields: id ("<hash>" means a content hash, "sha256:" + 32 hex digits), title, link,
published, updated (ISO 8601 UTC or null), summary, content, authors, categories, enclosures.
A feed that must not parse has {"error": "words the message must contain"} instead."""
import json, os, random, html, codecs

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "feeds")
BASE = "https://example.com/blog/feed.xml"
rnd = random.Random(20261129)
written = []

WORDS = ("river stone lantern copper meadow signal harbor orbit velvet cinder maple quartz "
         "tundra ember falcon glacier prism saffron thistle willow").split()

def words(n):
    return " ".join(rnd.choice(WORDS) for _ in range(n))

def write(name, body, expected, content_type=None, base=BASE):
    path = os.path.join(OUT, name)
    mode = "wb"
    with open(path, mode) as f:
        f.write(body if isinstance(body, bytes) else body.encode("utf-8"))
    stem = name.rsplit(".", 1)[0]
    with open(os.path.join(OUT, stem + ".expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    meta = {"file": name, "base": base}
    if content_type:
        meta["content_type"] = content_type
    with open(os.path.join(OUT, stem + ".meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    written.append(name)

def entry(**kw):
    e = {"id": None, "title": None, "link": None, "published": None, "updated": None, "summary": None,
         "content": None, "authors": [], "categories": [], "enclosures": []}
    e.update(kw)
    return e

# Dates: (as written, expected UTC or None)
DATES = [
    ("Sun, 19 May 2002 15:21:36 GMT", "2002-05-19T15:21:36Z"),
    ("Sun, 19 May 2002 15:21:36 +0200", "2002-05-19T13:21:36Z"),
    ("19 May 2002 15:21 EST", "2002-05-19T20:21:00Z"),
    ("Sun, 19 May 02 15:21:36 PDT", "2002-05-19T22:21:36Z"),
    ("Tue, 10 Jun 2003 04:00:00 -0700", "2003-06-10T11:00:00Z"),
    ("Wed, 02 Oct 2002 08:00:00 EST", "2002-10-02T13:00:00Z"),
    ("Wed, 02 Oct 2002 13:00:00 GMT", "2002-10-02T13:00:00Z"),
    ("Mon, 6 Jan 2025 09:05:00 +05:30", "2025-01-06T03:35:00Z"),
    ("Monday, 06 January 2025 09:05:00 UTC", "2025-01-06T09:05:00Z"),
    ("06 Jan 2025 09:05:00 Z", "2025-01-06T09:05:00Z"),
    ("Fri, 29 Feb 2024 23:59:59 CET", "2024-02-29T22:59:59Z"),
    ("Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00Z"),
]
ISO_DATES = [
    ("2003-12-13T18:30:02Z", "2003-12-13T18:30:02Z"),
    ("2003-12-13T18:30:02.25Z", "2003-12-13T18:30:02.250Z"),
    ("2003-12-13T18:30:02+01:00", "2003-12-13T17:30:02Z"),
    ("2003-12-13T18:30:02-0500", "2003-12-13T23:30:02Z"),
    ("2003-12-13T18:30Z", "2003-12-13T18:30:00Z"),
    ("2003-12-13", "2003-12-13T00:00:00Z"),
    ("2024-07-01T08:00:00.123456+02:00", "2024-07-01T06:00:00.123Z"),
    ("2025-11-03 10:15:00Z", "2025-11-03T10:15:00Z"),
]
BROKEN = ["bogus", "31 Jun 2020 10:00:00 GMT", "Sun, 19 Foo 2002 15:21:36 GMT", "2003-13-01T00:00:00Z", "yesterday",
          "Sun, 19 May 2002 25:61:00 GMT", "", "2002-02-30"]

def esc(s):
    return html.escape(s, quote=True)

# ---------- RSS 2.0 blogs ----------
def rss2(name, items, channel_extra="", ns="", prolog='<?xml version="1.0" encoding="UTF-8"?>\n', version="2.0", doctype=""):
    body = prolog + doctype + f'<rss version="{version}"{ns}>\n<channel>\n<title>Example blog</title>\n<link>https://example.com/blog/</link>\n<description>{words(6)}</description>\n<language>en-us</language>\n<generator>WordPress 6.4</generator>\n{channel_extra}'
    body += "".join(items) + "</channel>\n</rss>\n"
    return body

NS_ALL = (' xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
          ' xmlns:atom="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/"'
          ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"')

for v in range(10):
    items, exp = [], []
    n = 3 + v
    for i in range(n):
        date_w, date_e = DATES[(v + i) % len(DATES)]
        title = words(3).title()
        link = f"https://example.com/blog/{2020 + v}/{i}/{title.lower().replace(' ', '-')}/"
        cats = [words(1) for _ in range(i % 3)]
        cats_u = list(dict.fromkeys(cats))
        summary = f"<p>{words(12)}</p>"
        content = f"<p>{words(30)}</p><p><a href=\"/x\">{words(2)}</a></p>" if v % 2 == 0 else None
        author = ["Jane Doe", "Ann Example", "Bob"][i % 3]
        guid_mode = (v + i) % 4
        x = "<item>\n"
        x += f"<title>{esc(title)}</title>\n<link>{esc(link)}</link>\n"
        if guid_mode == 0:
            gid = f"https://example.com/blog/?p={1000 + v * 100 + i}"
            x += f'<guid isPermaLink="false">{gid}</guid>\n'
        elif guid_mode == 1:
            gid = link
            x += f"<guid>{esc(link)}</guid>\n"
        elif guid_mode == 2:
            gid = f"tag:example.com,2020:{v}-{i}"
            x += f'<guid isPermaLink="false">{gid}</guid>\n'
        else:
            gid = link  # no guid: the link is the id
        x += f"<pubDate>{date_w}</pubDate>\n"
        for c in cats:
            x += f"<category><![CDATA[{c}]]></category>\n"
        if v % 3 == 0:
            x += f"<dc:creator><![CDATA[{author}]]></dc:creator>\n"
        else:
            x += f"<author>{author.split()[0].lower()}@example.com ({author})</author>\n"
        x += f"<description><![CDATA[{summary}]]></description>\n"
        if content:
            x += f"<content:encoded><![CDATA[{content}]]></content:encoded>\n"
        x += "<slash:comments xmlns:slash=\"http://purl.org/rss/1.0/modules/slash/\">3</slash:comments>\n"
        x += "</item>\n"
        items.append(x)
        exp.append(entry(id=gid, title=title, link=link, published=date_e, summary=summary, content=content,
                         authors=[author], categories=cats_u))
    extra = '<atom:link href="https://example.com/blog/feed.xml" rel="self" type="application/rss+xml"/>\n<sy:updatePeriod>hourly</sy:updatePeriod>\n<sy:updateFrequency>1</sy:updateFrequency>\n'
    write(f"rss20-blog-{v:02d}.xml", rss2("", items, extra, NS_ALL), exp)

# ---------- RSS 2.0 news with ISO-ish and broken dates ----------
for v in range(6):
    items, exp = [], []
    for i, (w, e) in enumerate(ISO_DATES if v % 2 == 0 else [(b, None) for b in BROKEN]):
        title = f"{words(4).capitalize()} ({v}.{i})"
        link = f"https://news.example.org/story/{v}{i:03d}"
        tag = "dc:date" if v % 2 == 0 else "pubDate"
        items.append(f"<item><title>{esc(title)}</title><link>{link}</link><guid isPermaLink=\"true\">{link}</guid><{tag}>{esc(w)}</{tag}><description>{esc(words(8))}</description></item>\n")
        exp.append(entry(id=link, title=title, link=link, published=e, summary=None))
        exp[-1]["summary"] = None
    # descriptions: recompute deterministically
    write(f"rss20-news-dates-{v:02d}.xml", "", [])  # placeholder, rewritten below
    written.pop()
    # re-render with stored descriptions so expected matches
    items, exp2 = [], []
    rnd2 = random.Random(v)
    dates = ISO_DATES if v % 2 == 0 else [(b, None) for b in BROKEN]
    for i, (w, e) in enumerate(dates):
        title = f"Story {v}.{i}: {WORDS[(v + i) % len(WORDS)]} & {WORDS[(v * i) % len(WORDS)]}"
        link = f"https://news.example.org/story/{v}{i:03d}"
        tag = "dc:date" if v % 2 == 0 else "pubDate"
        desc = f"{WORDS[i % len(WORDS)]} <b>bold</b> {WORDS[(i + 3) % len(WORDS)]}"
        items.append(f"<item><title>{esc(title)}</title><link>{link}</link><guid isPermaLink=\"true\">{link}</guid><{tag}>{esc(w)}</{tag}><description>{esc(desc)}</description></item>\n")
        exp2.append(entry(id=link, title=title, link=link, published=e, summary=desc))
    write(f"rss20-news-dates-{v:02d}.xml", rss2("", items, "<ttl>30</ttl>\n", NS_ALL), exp2)

# ---------- RSS 0.91 / 0.92 ----------
DOCTYPE091 = '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
ENT = [("&nbsp;", "\u00a0"), ("&eacute;", "\u00e9"), ("&hellip;", "\u2026"), ("&mdash;", "\u2014"), ("&#8217;", "\u2019"),
       ("&#x2019;", "\u2019"), ("&copy;", "\u00a9"), ("&rsquo;", "\u2019"), ("&trade;", "\u2122"), ("&amp;", "&")]
for v in range(6):
    items, exp = [], []
    for i in range(4):
        ew, ee = ENT[(v + i) % len(ENT)]
        title = f"Caf{ew} {WORDS[i]} {i}"
        title_e = f"Caf{ee} {WORDS[i]} {i}"
        link = f"http://www.scripting.com/{1999 + v}/0{i + 1}/item{i}.html"
        desc = f"It{ew}s {WORDS[v]} AT&T {WORDS[i]}"
        desc_e = f"It{ee}s {WORDS[v]} AT&T {WORDS[i]}"
        x = f"<item>\n<title>{title}</title>\n<link>{link}</link>\n<description>{desc}</description>\n"
        enc = []
        if v >= 3 and i % 2 == 0:
            x += f'<enclosure url="http://media.example.com/ep{v}{i}.mp3" length="{1000 * (i + 1)}" type="audio/mpeg"/>\n'
            enc = [{"url": f"http://media.example.com/ep{v}{i}.mp3", "type": "audio/mpeg", "length": 1000 * (i + 1)}]
        x += "</item>\n"
        items.append(x)
        exp.append(entry(id=link, title=title_e, link=link, summary=desc_e, enclosures=enc))
    version = "0.91" if v < 3 else "0.92"
    prolog = '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
    body = rss2("", items, "<image><title>logo</title><url>http://x/logo.gif</url><link>http://x/</link></image>\n", "", prolog, version, DOCTYPE091 if v < 3 else "")
    write(f"rss{version.replace('.', '')}-classic-{v:02d}.xml", body.encode("latin-1", errors="xmlcharrefreplace"), exp)

# ---------- RSS 1.0 (RDF) and 0.90 ----------
for v in range(6):
    rss090 = v >= 4
    ns = "http://my.netscape.com/rdf/simple/0.9/" if rss090 else "http://purl.org/rss/1.0/"
    items, exp, seq = [], [], []
    for i in range(3 + v):
        about = f"http://planet.example.net/{v}/entry-{i}"
        title = f"{WORDS[(i * 7 + v) % len(WORDS)].title()} notes {i}"
        date_w, date_e = ISO_DATES[(i + v) % len(ISO_DATES)]
        seq.append(f'<rdf:li rdf:resource="{about}"/>')
        if rss090:
            items.append(f"<item><title>{title}</title><link>{about}</link></item>\n")
            exp.append(entry(id=about, title=title, link=about))
        else:
            subj = WORDS[i % len(WORDS)]
            items.append(f'<item rdf:about="{about}"><title>{title}</title><link>{about}</link><description>{words(5)}</description><dc:date>{date_w}</dc:date><dc:creator>Planet {v}</dc:creator><dc:subject>{subj}</dc:subject></item>\n')
            exp.append(entry(id=about, title=title, link=about, published=date_e, authors=[f"Planet {v}"], categories=[subj]))
    # descriptions are random: read them back from the rendered item text
    for k, it in enumerate(items):
        if "<description>" in it:
            exp[k]["summary"] = it.split("<description>")[1].split("</description>")[0]
    body = ('<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns="{ns}" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
            f'<channel rdf:about="http://planet.example.net/"><title>Planet {v}</title><link>http://planet.example.net/</link>'
            f'<description>d</description>' + ("" if rss090 else f'<items><rdf:Seq>{"".join(seq)}</rdf:Seq></items>') + '</channel>\n'
            + "".join(items) + "</rdf:RDF>\n")
    write(f"{'rss090' if rss090 else 'rdf10'}-planet-{v:02d}.xml", body, exp)

# ---------- Atom 1.0 ----------
for v in range(10):
    entries, exp = [], []
    feed_base = ["https://forge.example.com/", "https://example.org/blog/", None][v % 3]
    for i in range(2 + v % 5):
        eid = f"urn:uuid:{v:08x}-0000-4000-8000-{i:012x}"
        title = f"Release {v}.{i} of {WORDS[i]}"
        rel = f"releases/{v}.{i}"
        entry_base = "sub/" if (v % 4 == 1 and i % 2 == 0) else None
        base = feed_base or "https://example.com/blog/feed.xml"
        from urllib.parse import urljoin
        eb = urljoin(base, entry_base) if entry_base else base
        link = urljoin(eb, rel)
        pub_w, pub_e = ISO_DATES[(v + i) % 5]
        upd_w, upd_e = ISO_DATES[(v + i + 1) % 5]
        kind = (v + i) % 3
        base_attr = ' xml:base="%s"' % entry_base if entry_base else ""
        x = f'<entry{base_attr}>\n<id>{eid}</id>\n'
        if kind == 0:
            x += f"<title type=\"text\">{esc(title)}</title>\n"
            content = f"Plain {words(4)} text"
            x += f"<content type=\"text\">{esc(content)}</content>\n"
        elif kind == 1:
            x += f"<title type=\"html\">{esc(title)}</title>\n"
            content = f"<p>{words(6)} &amp; more</p>"
            x += f"<content type=\"html\">{esc(content)}</content>\n"
        else:
            x += f"<title>{esc(title)}</title>\n"
            inner = f"<p>{words(5)}<br/><em>{words(2)}</em></p>"
            x += f'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{inner}</div></content>\n'
            content = inner
        x += f'<link rel="alternate" type="text/html" href="{rel}"/>\n<link rel="replies" href="{rel}#comments"/>\n'
        enc = []
        if i == 1:
            x += f'<link rel="enclosure" type="application/gzip" length="{4096 * v}" href="{rel}.tar.gz"/>\n'
            enc = [{"url": urljoin(eb, rel + ".tar.gz"), "type": "application/gzip", "length": 4096 * v}]
        x += f"<published>{pub_w}</published>\n<updated>{upd_w}</updated>\n"
        summary = None
        if v % 2 == 0:
            summary = f"Summary {words(3)}"
            x += f"<summary>{summary}</summary>\n"
        authors = ["Feed Owner"]
        if i % 2 == 1:
            x += f"<author><name>Contributor {i}</name><email>c{i}@example.com</email></author>\n"
            authors = [f"Contributor {i}"]
        cats = [f"tag{i}", f"tag{v}"] if i != v else [f"tag{i}"]
        for c in cats:
            x += f'<category term="{c}" label="Tag"/>\n'
        x += "</entry>\n"
        entries.append(x)
        exp.append(entry(id=eid, title=title, link=link, published=pub_e, updated=upd_e, summary=summary, content=content,
                         authors=authors, categories=list(dict.fromkeys(cats)), enclosures=enc))
    head = '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"' + (' xml:base="%s"' % feed_base if feed_base else "") + '>\n'
    head += "<title>Forge releases</title>\n<id>tag:example.com,2024:feed</id>\n<updated>2024-01-01T00:00:00Z</updated>\n<author><name>Feed Owner</name></author>\n<link rel=\"self\" href=\"feed.atom\"/>\n<generator uri=\"https://gohugo.io/\">Hugo</generator>\n"
    write(f"atom10-releases-{v:02d}.xml", head + "".join(entries) + "</feed>\n", exp)

# ---------- Atom 0.3 ----------
for v in range(4):
    entries, exp = [], []
    for i in range(3):
        eid = f"tag:blogger.com,1999:blog-{v}.post-{i}"
        link = f"http://oldblog.example.com/{2004 + v}/0{i + 1}/post.html"
        iw, ie = ISO_DATES[i]
        mw, me = ISO_DATES[i + 1]
        content = f"<p>{WORDS[i]} {WORDS[v]}</p>"
        entries.append(f'<entry><title mode="escaped" type="text/html">Post {i}</title><link rel="alternate" type="text/html" href="{link}"/>'
                       f'<id>{eid}</id><issued>{iw}</issued><modified>{mw}</modified>'
                       f'<content type="text/html" mode="escaped">{esc(content)}</content><author><name>Old Timer</name></author></entry>\n')
        exp.append(entry(id=eid, title=f"Post {i}", link=link, published=ie, updated=me, content=content, authors=["Old Timer"]))
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<feed version="0.3" xmlns="http://purl.org/atom/ns#">\n<title>Old blog</title><modified>2004-01-01T00:00:00Z</modified>\n' + "".join(entries) + "</feed>\n"
    write(f"atom03-blogger-{v:02d}.xml", body, exp)

# ---------- JSON Feed 1.0 / 1.1 ----------
for v in range(6):
    items, exp = [], []
    v11 = v % 2 == 0
    for i in range(3 + v):
        iid = f"{v}-{i}" if i != 2 else str(1000 + v)
        url = f"posts/{v}/{i}" if v % 3 == 0 else f"https://micro.example.blog/{v}/{i}.html"
        from urllib.parse import urljoin
        link = urljoin("https://micro.example.blog/feed.json", url)
        w, e = ISO_DATES[(i + v) % len(ISO_DATES)]
        item = {"id": iid, "url": url, "date_published": w}
        if i % 2 == 0:
            item["content_html"] = f"<p>{WORDS[i]} post</p>"
            content = item["content_html"]
        else:
            item["content_text"] = f"{WORDS[i]} plain"
            content = item["content_text"]
        if i != 1:
            item["title"] = f"Micro {v}.{i}"
        if v11:
            item["authors"] = [{"name": "Manton"}] if i % 2 else []
        else:
            item["author"] = {"name": "Brent"} if i % 2 else None
            if item["author"] is None:
                del item["author"]
        item["tags"] = ["swift", "feeds"][: i % 3]
        att = []
        if i == 0:
            item["attachments"] = [{"url": f"https://cdn.example.blog/{v}.m4a", "mime_type": "audio/x-m4a", "size_in_bytes": 89970236},
                                   {"url": f"https://cdn.example.blog/{v}.m4a", "mime_type": "audio/x-m4a"}]
            att = [{"url": f"https://cdn.example.blog/{v}.m4a", "type": "audio/x-m4a", "length": 89970236}]
        items.append(item)
        author_names = ["Site Author"]
        if v11 and i % 2:
            author_names = ["Manton"]
        if not v11 and i % 2:
            author_names = ["Brent"]
        exp.append(entry(id=iid if i != 2 else str(1000 + v), title=item.get("title"), link=link, published=e, content=content,
                         authors=author_names, categories=item["tags"], enclosures=att))
    doc = {"version": "https://jsonfeed.org/version/1.1" if v11 else "https://jsonfeed.org/version/1", "title": "Micro",
           "home_page_url": "https://micro.example.blog/", "feed_url": "https://micro.example.blog/feed.json", "items": items}
    if v11:
        doc["authors"] = [{"name": "Site Author"}]
        doc["language"] = "en"
    else:
        doc["author"] = {"name": "Site Author"}
    if v == 4:
        # A number id, as some 1.0 feeds wrote.
        doc["items"][0]["id"] = 42
        exp[0]["id"] = "42"
    write(f"jsonfeed{'11' if v11 else '10'}-micro-{v:02d}.json", json.dumps(doc, indent=2, ensure_ascii=False), exp,
          content_type="application/feed+json", base="https://micro.example.blog/feed.json")

# ---------- Podcasts ----------
for v in range(6):
    items, exp = [], []
    for i in range(3):
        guid = f"podcast-{v}-ep-{i}"
        mp3 = f"https://traffic.example.fm/show{v}/ep{i}.mp3"
        x = f"<item><title>Episode {i}: {WORDS[i + v]}</title><guid isPermaLink=\"false\">{guid}</guid>"
        x += f"<pubDate>{DATES[i][0]}</pubDate><itunes:author>Host {v}</itunes:author><itunes:duration>00:4{i}:00</itunes:duration>"
        x += f'<enclosure url="{mp3}" length="{3_000_000 + i}" type="audio/mpeg"/>'
        encs = [{"url": mp3, "type": "audio/mpeg", "length": 3_000_000 + i}]
        if v % 2 == 0:
            # The same file again in media:content (with its size), and a second rendition in a group.
            x += f'<media:content url="{mp3}" fileSize="{3_000_000 + i}" type="audio/mpeg" medium="audio"/>'
            x += f'<media:group><media:content url="https://traffic.example.fm/show{v}/ep{i}.ogg" type="audio/ogg" fileSize="2500000"/>'
            x += f'<media:content url="{mp3}" type="audio/mpeg"/></media:group>'
            encs.append({"url": f"https://traffic.example.fm/show{v}/ep{i}.ogg", "type": "audio/ogg", "length": 2500000})
        if v % 3 == 1:
            x += f'<media:thumbnail url="https://img.example.fm/{v}{i}.jpg"/>'
        x += f"<description>{esc('Show notes ' + WORDS[i])}</description><itunes:explicit>false</itunes:explicit></item>\n"
        items.append(x)
        exp.append(entry(id=guid, title=f"Episode {i}: {WORDS[i + v]}", link=None, published=DATES[i][1], summary="Show notes " + WORDS[i],
                         authors=[f"Host {v}"], enclosures=encs))
    extra = f"<itunes:author>Host {v}</itunes:author><itunes:image href=\"https://img.example.fm/{v}.jpg\"/><itunes:category text=\"Technology\"/>\n"
    write(f"podcast-show-{v:02d}.xml", rss2("", items, extra, NS_ALL), exp)

# ---------- Encodings ----------
def enc_feed(title_text, declared):
    decl = f'<?xml version="1.0" encoding="{declared}"?>\n' if declared else ""
    return decl + f'<rss version="2.0"><channel><title>Enc</title><item><title>{title_text}</title><guid>enc-1</guid><description>{title_text} desc</description></item><item><title>Plain</title><guid>enc-2</guid></item></channel></rss>\n'

samples = [
    ("latin1-declared", "Caf\u00e9 \u00fcber na\u00efve", "ISO-8859-1", "latin-1", None, None),
    ("cp1252-declared", "\u201cSmart\u201d quotes \u2013 \u20ac5", "windows-1252", "cp1252", None, None),
    ("utf16le-bom", "\u65e5\u672c\u8a9e \u00e9", "UTF-16", "utf-16-le", codecs.BOM_UTF16_LE, None),
    ("utf16be-bom", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u00e9", "UTF-16", "utf-16-be", codecs.BOM_UTF16_BE, None),
    ("utf8-bom", "\u00c5ngstr\u00f6m \u2713", "UTF-8", "utf-8", codecs.BOM_UTF8, None),
    ("utf8-undeclared", "Gr\u00fc\u00dfe \u2603", None, "utf-8", None, None),
    ("cp1252-undeclared", "Don\u2019t \u201cpanic\u201d", None, "cp1252", None, None),
    ("latin1-http-charset", "Espa\u00f1a ma\u00f1ana", None, "latin-1", None, "application/rss+xml; charset=ISO-8859-1"),
    ("cp1252-http-over-decl", "Ellipsis\u2026 \u2020", "UTF-8", "cp1252", None, "text/xml; charset=windows-1252"),
    ("latin2-declared", "Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105", "ISO-8859-2", "iso-8859-2", None, None),
]
for name, text, declared, codec, bom, ctype in samples:
    body = enc_feed(text, declared).encode(codec)
    if bom:
        body = bom + body
    exp = [entry(id="enc-1", title=text, summary=text + " desc"), entry(id="enc-2", title="Plain")]
    write(f"encoding-{name}.xml", body, exp, content_type=ctype)

# ---------- Duplicate and missing ids ----------
dup = rss2("", [
    "<item><title>One</title><guid>same</guid><link>https://d.example/1</link></item>\n",
    "<item><title>Two</title><guid>same</guid><link>https://d.example/2</link></item>\n",
    "<item><title>One</title><guid>same</guid><link>https://d.example/1</link></item>\n",
    "<item><title>No ids at all</title><description>just text</description></item>\n",
])
write("rss20-duplicate-guids.xml", dup, [
    entry(id="same", title="One", link="https://d.example/1"),
    entry(id="same#<hash16>", title="Two", link="https://d.example/2"),
    entry(id="<hash>", title="No ids at all", summary="just text"),
])
dup_atom = ('<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
            '<entry><id>x</id><title>A</title><updated>2024-01-01T00:00:00Z</updated></entry>'
            '<entry><id>x</id><title>B</title><updated>2024-01-02T00:00:00Z</updated></entry>'
            '<entry><title>C</title><link href="/c"/></entry></feed>')
write("atom10-duplicate-ids.xml", dup_atom, [
    entry(id="x", title="A", updated="2024-01-01T00:00:00Z"),
    entry(id="x#<hash16>", title="B", updated="2024-01-02T00:00:00Z"),
    entry(id="https://example.com/c", title="C", link="https://example.com/c"),
])

# ---------- Relative links and xml:base ----------
relbase = ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://www.example.org/root/">'
           '<title>xml:base</title>'
           '<entry xml:base="child/"><id>b1</id><title>Child base</title><link href="page.html"/></entry>'
           '<entry><id>b2</id><title>Absolute path</title><link href="/top.html"/></entry>'
           '<entry xml:base="http://other.example.net/x/"><id>b3</id><title>Other host</title><link href="../y/z.html"/></entry>'
           '<entry><id>b4</id><title>Already absolute</title><link href="https://abs.example.com/a?b=c&amp;d=e"/></entry>'
           '</feed>')
write("atom10-xml-base.xml", relbase, [
    entry(id="b1", title="Child base", link="http://www.example.org/root/child/page.html"),
    entry(id="b2", title="Absolute path", link="http://www.example.org/top.html"),
    entry(id="b3", title="Other host", link="http://other.example.net/y/z.html"),
    entry(id="b4", title="Already absolute", link="https://abs.example.com/a?b=c&d=e"),
])
relrss = rss2("", ['<item><title>Rel</title><link>../posts/1.html</link><guid>r1</guid><enclosure url="media/a.mp3" type="audio/mpeg" length="10"/></item>\n'])
write("rss20-relative-links.xml", relrss, [entry(id="r1", title="Rel", link="https://example.com/posts/1.html",
                                                 enclosures=[{"url": "https://example.com/blog/media/a.mp3", "type": "audio/mpeg", "length": 10}])])

# ---------- Truncated and malformed documents ----------
good = rss2("", [f"<item><title>T{i}</title><guid>t{i}</guid><description>{words(10)}</description></item>\n" for i in range(5)])
cuts = [int(len(good) * f) for f in (0.15, 0.4, 0.7, 0.95)] + [good.rindex("</rss>") + 3]
for k, at in enumerate(cuts):
    cut = good[:at]
    write(f"truncated-rss20-{k:02d}.xml", cut, {"error": "truncated|ends too early|malformed"})
atom_good = open(os.path.join(OUT, "atom10-releases-01.xml")).read()
for k, frac in enumerate([0.3, 0.8]):
    write(f"truncated-atom10-{k:02d}.xml", atom_good[: int(len(atom_good) * frac)], {"error": "truncated|ends too early|malformed"})
write("malformed-mismatched-tags.xml", '<rss version="2.0"><channel><item><title>x</item></channel></rss>', {"error": "malformed"})
write("malformed-not-a-feed.xml", '<?xml version="1.0"?><html><body>Not a feed</body></html>', {"error": "not a feed"})
write("malformed-jsonfeed-truncated.json", '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1"', {"error": "malformed JSON"},
      content_type="application/feed+json")
write("malformed-json-not-feed.json", '{"data": []}', {"error": "not a feed"}, content_type="application/json")

# ---------- Entities, CDATA and HTML in titles ----------
ent = rss2("", [
    "<item><title>Tom &amp; Jerry&rsquo;s &lt;b&gt;show&lt;/b&gt;</title><guid>e1</guid></item>\n",
    "<item><title><![CDATA[Raw <em>CDATA</em> & stuff]]></title><guid>e2</guid></item>\n",
    "<item><title>&Aacute;lvaro &ndash; &euro;10 &frac12; &notanentity; &#169;</title><guid>e3</guid></item>\n",
    "<item><title>Nested &amp;amp; escapes</title><guid>e4</guid><description>&lt;p&gt;Hello&lt;/p&gt;</description></item>\n",
])
write("rss20-entities.xml", ent, [
    entry(id="e1", title="Tom & Jerry\u2019s <b>show</b>"),
    entry(id="e2", title="Raw <em>CDATA</em> & stuff"),
    entry(id="e3", title="\u00c1lvaro \u2013 \u20ac10 \u00bd &notanentity; \u00a9"),
    entry(id="e4", title="Nested &amp; escapes", summary="<p>Hello</p>"),
])
# An internal DTD subset with an entity bomb: the DTD is dropped, nothing expands.
bomb = ('<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "aaaaaaaaaa">\n<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n<rss version="2.0"><channel><title>t</title>'
        '<item><title>&c;</title><guid>bomb</guid></item></channel></rss>')
write("rss20-entity-bomb.xml", bomb, [entry(id="bomb", title="&c;")])
# An external entity (XXE): never fetched, never read.
xxe = ('<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<rss version="2.0"><channel><title>t</title>'
       '<item><title>&x;</title><guid>xxe</guid></item></channel></rss>')
write("rss20-xxe.xml", xxe, [entry(id="xxe", title="&x;")])

# Undeclared namespace prefixes, as some generators write them: read as what they always mean.
undecl = ('<rss version="2.0"><channel><title>t</title><item><title>U</title><guid>u1</guid><dc:creator>Pat</dc:creator>'
          '<content:encoded><![CDATA[<p>full</p>]]></content:encoded><media:content url="https://m.example/v.mp4" type="video/mp4"/></item></channel></rss>')
write("rss20-undeclared-prefixes.xml", undecl, [entry(id="u1", title="U", authors=["Pat"], content="<p>full</p>",
                                                      enclosures=[{"url": "https://m.example/v.mp4", "type": "video/mp4", "length": None}])])

# The gzip-encoded copy the HTTP tests serve with Content-Encoding: gzip.
import gzip
os.makedirs(os.path.join(os.path.dirname(OUT), "http"), exist_ok=True)
with open(os.path.join(OUT, "rss20-blog-00.xml"), "rb") as src, open(os.path.join(os.path.dirname(OUT), "http", "blog.xml.gz"), "wb") as dst:
    dst.write(gzip.compress(src.read(), mtime=0))

with open(os.path.join(OUT, "INDEX"), "w") as f:
    f.write("\n".join(sorted(written)) + "\n")
print(len(written), "feeds")
