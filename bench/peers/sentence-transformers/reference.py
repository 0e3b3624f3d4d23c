#!/usr/bin/env python3
"""Write reference embeddings of all-MiniLM-L6-v2 for a correctness test.

Embeds the fixed list SENTENCES below with sentence-transformers (local model
folder, CPU, max_seq_length 256, normalize_embeddings=True) and writes

    {"model": "sentence-transformers/all-MiniLM-L6-v2", "max_seq_length": 256,
     "normalize": true, "sentence_transformers": VER, "torch": VER,
     "transformers": VER,
     "items": [{"text": ..., "tokens": N, "vector": [384 floats]}, ...]}

"tokens" is the number of word-pieces the model saw, [CLS] and [SEP]
included, after truncation at 256. Vectors are rounded to 7 significant
digits. Each text is embedded on its own (batch of one, so no padding).

    $PY reference.py --model DIR --out tests/fixtures/minilm_reference.json

The list is part of the fixture's definition: changing it changes the fixture.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import json
import sys

MAX_SEQ_LENGTH = 256

# ---------------------------------------------------------------------------
# Long passages: 150-250 words each, so most exceed 128 word-pieces.
# ---------------------------------------------------------------------------
PASSAGES = [
    # 1 - history / geography
    "The old harbour town grew up around a single stone quay that fishermen built "
    "in the twelfth century to shelter their boats from the winter storms. For "
    "three hundred years the quay was extended a few metres at a time, whenever a "
    "good season left the guild with money to spare, and the marks of each "
    "extension can still be seen in the changing colour of the granite blocks. "
    "In the eighteenth century the town became rich on salted cod and on the "
    "timber trade with the Baltic, and merchants built the tall narrow houses "
    "that line the waterfront today. Their cellars opened directly onto the "
    "water, so that barrels could be rolled from a ship into storage without "
    "ever touching the street. The arrival of the railway in 1861 changed "
    "everything: fish could now reach the capital fresh within a day, and the "
    "salting sheds closed one after another. Today the harbour is used mostly by "
    "pleasure boats and a small ferry to the islands, but every August the town "
    "still holds a festival in which the oldest families row the length of the "
    "quay in wooden boats painted in their ancestral colours.",
    # 2 - science explanation
    "Photosynthesis is the process by which green plants, algae and some "
    "bacteria convert light energy into chemical energy. It takes place mainly "
    "in the chloroplasts, small structures inside plant cells that contain the "
    "pigment chlorophyll. Chlorophyll absorbs red and blue light very well but "
    "reflects green light, which is why leaves look green to us. The process has "
    "two main stages. In the light-dependent reactions, energy from sunlight is "
    "used to split water molecules, releasing oxygen as a by-product and "
    "producing the energy carriers ATP and NADPH. In the second stage, often "
    "called the Calvin cycle, the plant uses that stored energy to fix carbon "
    "dioxide from the air into sugars. These sugars are then used to build "
    "cellulose for cell walls, starch for storage, and many other molecules the "
    "plant needs to grow. Almost all life on Earth depends on photosynthesis, "
    "directly or indirectly, because it is the main route by which energy from "
    "the sun enters the food chain, and because it produced the oxygen that "
    "animals breathe.",
    # 3 - software engineering
    "When a service starts to slow down under load, the first temptation is to "
    "add more machines, but that rarely fixes the real problem. A better first "
    "step is to measure where the time actually goes. Profile a single request "
    "from the moment it arrives until the response is written, and break the "
    "total down into parsing, waiting on locks, database queries, calls to other "
    "services and serialisation. Very often one component dominates: a query "
    "that lost its index after a migration, a connection pool that is too small, "
    "or a cache whose keys accidentally include a timestamp and therefore never "
    "hit. Once the bottleneck is known, fix it and measure again, because "
    "removing one bottleneck usually reveals the next one. Keep the benchmark "
    "that found the problem and run it in continuous integration, so that the "
    "same regression cannot quietly return. Only when every single request is "
    "reasonably efficient does it make sense to scale out horizontally, and by "
    "then you will also know which resource, CPU, memory, disk or network, "
    "limits each instance.",
    # 4 - cooking
    "To make a simple loaf of bread you need only flour, water, salt and yeast. "
    "Mix five hundred grams of strong white flour with ten grams of salt and "
    "seven grams of dried yeast in a large bowl, keeping the salt and the yeast "
    "on opposite sides at first. Add about three hundred and fifty millilitres "
    "of lukewarm water and stir until a shaggy dough forms. Tip it onto a lightly "
    "floured surface and knead for ten minutes, stretching the dough away from "
    "you with the heel of your hand and folding it back, until it feels smooth "
    "and springs back when pressed. Return it to the bowl, cover it with a damp "
    "cloth and leave it somewhere warm for an hour or two, until it has doubled "
    "in size. Knock it back, shape it into a tight ball or an oval, place it on "
    "a baking tray and let it rise again for forty-five minutes. Slash the top "
    "with a sharp knife and bake at two hundred and twenty degrees for about "
    "thirty minutes. The loaf is done when it sounds hollow when tapped "
    "underneath. Let it cool completely before slicing.",
    # 5 - economics
    "Inflation is a general rise in the prices of goods and services over time, "
    "which means that each unit of money buys a little less than it did before. "
    "Moderate inflation is considered normal in a growing economy, and most "
    "central banks aim to keep it close to two percent per year. Economists "
    "distinguish several causes. Demand-pull inflation happens when spending "
    "grows faster than the economy's ability to produce, for example after a "
    "large stimulus. Cost-push inflation arises when the cost of inputs such as "
    "energy or wages rises and firms pass those costs on to customers. Built-in "
    "inflation reflects expectations: if workers expect prices to rise, they ask "
    "for higher wages, which raises costs and in turn prices. Central banks "
    "usually respond to persistent inflation by raising interest rates, which "
    "makes borrowing more expensive, slows spending and investment, and "
    "eventually cools price growth. The difficulty is timing, because interest "
    "rate changes take many months to work through the economy, and raising them "
    "too far or too fast can tip the economy into recession.",
    # 6 - travel narrative
    "We left the village before dawn, while the stars were still sharp above the "
    "ridge and the path was only a pale line between dark rocks. For the first "
    "hour nobody spoke; the only sounds were our boots on the gravel and the "
    "stream somewhere below us in the gorge. As the sky turned grey the shapes "
    "of the mountains appeared one by one, first the rounded shoulder of the "
    "nearest peak and then, far to the west, a jagged wall still covered in "
    "snow. We reached the pass a little after eight. A cold wind came over the "
    "saddle and we sheltered behind a cairn to eat bread, cheese and dried "
    "apricots, watching a pair of eagles circle slowly in the valley beneath us. "
    "The descent on the far side was steeper than the map suggested, a long "
    "scree slope that slid under our feet at every step, and it was mid-afternoon "
    "before we reached the first pine trees and the hut where we would spend the "
    "night. The warden greeted us with tea and told us that the weather would "
    "turn the next day.",
    # 7 - medicine / health
    "Regular physical activity is one of the most effective things people can "
    "do for their health. Adults are generally advised to do at least one "
    "hundred and fifty minutes of moderate aerobic activity each week, such as "
    "brisk walking or cycling, or seventy-five minutes of vigorous activity such "
    "as running, together with exercises that strengthen the major muscle "
    "groups on two or more days. Exercise lowers the risk of heart disease, "
    "stroke, type two diabetes and several cancers, helps to control weight, "
    "and strengthens bones and muscles. It also has clear benefits for mental "
    "health, reducing symptoms of anxiety and depression and improving sleep. "
    "The benefits begin at low levels: even people who have been inactive for "
    "years gain measurably from short daily walks. For most healthy adults the "
    "risks of exercise are small, but people with heart conditions or other "
    "chronic illnesses should talk to a doctor before starting a demanding "
    "programme. The best form of exercise is, in the end, the one a person "
    "enjoys enough to keep doing week after week.",
    # 8 - technology history
    "The first electronic computers filled entire rooms, consumed enormous "
    "amounts of electricity and were programmed by rewiring panels of cables or "
    "setting rows of switches by hand. Vacuum tubes failed so often that "
    "engineers spent much of their time finding and replacing burnt-out valves. "
    "The invention of the transistor at the end of the nineteen-forties made "
    "machines smaller, cheaper and far more reliable, and the integrated "
    "circuit, which placed many transistors on a single chip of silicon, "
    "continued that trend at an astonishing pace. By the nineteen-seventies a "
    "complete processor fitted on one chip, and within a decade personal "
    "computers had appeared on office desks and in family homes. Each step "
    "brought not only more speed but also new kinds of software: operating "
    "systems that let several programs share a machine, graphical interfaces "
    "that ordinary people could use without training, and networks that let "
    "computers exchange messages across the world. Today a telephone in a pocket "
    "is millions of times more powerful than those early room-sized machines.",
    # 9 - legal / policy style
    "The tenant shall pay the rent monthly in advance on the first day of each "
    "calendar month by bank transfer to the account nominated by the landlord. "
    "The tenant shall keep the interior of the property in good and clean "
    "condition, fair wear and tear excepted, and shall not make any alteration "
    "or addition to the property without the prior written consent of the "
    "landlord, which shall not be unreasonably withheld. The landlord shall be "
    "responsible for keeping in repair the structure and exterior of the "
    "building, including drains, gutters and external pipes, and for keeping in "
    "working order the installations for the supply of water, gas, electricity "
    "and heating. Either party may terminate this agreement after the initial "
    "term of twelve months by giving not less than two months' notice in "
    "writing. Any deposit paid by the tenant shall be protected in an approved "
    "scheme and returned within ten days of the end of the tenancy, less any "
    "deductions agreed in writing for damage or unpaid rent.",
    # 10 - nature
    "Every autumn millions of birds leave their breeding grounds in the north and "
    "fly south to spend the winter in warmer places. Some species travel only a "
    "few hundred kilometres, while others cross entire continents and oceans. "
    "The arctic tern holds the record: it flies from the Arctic to the Antarctic "
    "and back each year, a round trip of more than seventy thousand kilometres. "
    "Birds find their way using several cues at once. They read the position of "
    "the sun during the day and the pattern of stars at night, they sense the "
    "Earth's magnetic field, and they recognise landmarks such as coastlines, "
    "rivers and mountain ranges. Young birds of many species make their first "
    "migration alone, guided only by instinct, which suggests that both the "
    "direction and the approximate distance of the journey are inherited. "
    "Migration is dangerous; storms, exhaustion, predators and collisions with "
    "buildings kill a large share of travellers each year, and the loss of "
    "stopover habitats such as wetlands makes the journey harder still.",
]

# Longer than 256 word-pieces: these are truncated.
OVERLONG = [
    # natural prose, ~360 words
    "The committee met on a wet Tuesday morning in the small room at the back of "
    "the library, the one with the broken radiator and the portrait of the "
    "founder that nobody could remember hanging. There were eleven items on the "
    "agenda, and the chair, a retired schoolteacher with a precise voice and a "
    "habit of tapping her pen on the table, announced at the start that she "
    "intended to finish by noon. The first item, the minutes of the previous "
    "meeting, was approved without discussion. The second, the annual accounts, "
    "took forty minutes, because the treasurer had found a discrepancy of "
    "twelve pounds and could not explain it, and several members felt strongly "
    "that a discrepancy of any size was a matter of principle. Eventually it was "
    "agreed that the treasurer would investigate further and report back. The "
    "third item concerned the roof, which had leaked again during the storms of "
    "the previous month, damaging a shelf of local history books. Three quotes "
    "had been obtained from builders; the cheapest was considered suspiciously "
    "cheap, the most expensive was considered outrageous, and the middle one was "
    "accepted with a sigh of relief. Items four to seven, covering the opening "
    "hours over the holidays, the children's reading scheme, a request from the "
    "chess club to use the room on Thursday evenings, and the replacement of the "
    "photocopier, were dealt with quickly. Item eight, a proposal to sell "
    "coffee in the entrance hall, produced the longest debate of the day. Some "
    "members argued that it would bring in younger visitors and much-needed "
    "income; others feared spilled drinks, crumbs on the carpets and the "
    "transformation of a quiet place of study into something resembling a "
    "railway station. A vote was finally taken and the proposal passed by six "
    "votes to five, with the chair using her casting vote. Items nine and ten "
    "were postponed, and under any other business a member asked, not for the "
    "first time, whether anything could be done about the radiator. The meeting "
    "closed at twenty past one.",
    # word-piece dense: numbers, identifiers, rare words (~220 words, > 400 pieces)
    "Release notes v4.17.2-rc3 (build 20240917.1432, commit 9f3ac21e7b): "
    "fixed CVE-2024-38812 in libxml2 2.12.6; bumped OpenSSL 3.0.13 -> 3.0.15, "
    "zlib 1.3.1, SQLite 3.46.1 and protobuf 27.3; the HTTP/2 client now honours "
    "SETTINGS_MAX_CONCURRENT_STREAMS=128 and retries 429/503 responses with "
    "exponential backoff (base 250 ms, factor 1.6, jitter +/-20%, cap 30 s). "
    "Throughput on the x86_64 AVX2 path rose from 1,843.7 to 2,291.4 req/s "
    "(p50 3.2 ms -> 2.6 ms, p99 41.8 ms -> 19.3 ms) on a c6i.2xlarge with "
    "8 vCPUs and 16 GiB RAM; aarch64 NEON improved 11.4% on Graviton3. "
    "Deprecated: --legacy-tls, --max-conn-per-host (use --pool.max_idle=64), "
    "ENV FOO_BAR_TIMEOUT_MS (use FOO_TIMEOUT=1500ms). Removed the "
    "ExperimentalAsyncBatchWriterFactoryImpl and the xyzzy_v0 wire format. "
    "Checksums: sha256 3b1f0c9d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c "
    "(linux-amd64.tar.gz, 14,338,912 bytes), sha256 "
    "a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0fedcba9876543210 "
    "(darwin-arm64.tar.gz, 13,904,227 bytes). Known issues: #48213 (IPv6 "
    "link-local zone IDs like fe80::1%eth0 are rejected), #48377 (Windows "
    "paths longer than 260 chars, e.g. C:\\Users\\Build\\AppData\\Local\\Temp\\"
    "x7Qz\\node_modules\\...), #48402 (TZ=Pacific/Chatham offsets +12:45/+13:45 "
    "miscomputed before 1957-01-01T00:00:00Z). Contributors: @mkowalczyk, "
    "@j.nakamura, @oyelaran-d, @xiaoqian_liu, @fbrunetti and 37 others.",
]

SENTENCES = [
    # short, plain
    "Hello world.",
    "This is a test.",
    "The cat sat on the mat.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "A woman is playing the violin.",
    "Two men pushed carts through the woods.",
    "The quick brown fox jumps over the lazy dog.",
    "It is raining heavily in the city today.",
    "I love programming in Rust.",
    "Embeddings map text to vectors.",
    "Paris is the capital of France.",
    "The meeting was postponed until next week.",
    "She sells seashells by the seashore.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "He forgot his umbrella at the station again.",
    "The stock market fell sharply on Monday.",
    "Our team won the championship last night.",
    "Please remember to lock the door when you leave.",
    "word",
    "a",
    "ok",
    "",
    # questions
    "What time is it?",
    "How do I reset my password?",
    "Where is the nearest train station?",
    "Why is the sky blue?",
    "Can you recommend a good book about history?",
    "Is it safe to drink tap water here?",
    "Who wrote the theory of general relativity?",
    "How many kilometres are there in a mile?",
    "What's the difference between a list and a tuple in Python?",
    "Did you feed the cat???",
    # numbers, dates, money, units
    "The invoice total is $1,234.56, due on 2024-03-15.",
    "Call me at +1 (555) 010-9999 after 6:30 p.m.",
    "Pi is approximately 3.14159265358979323846.",
    "The population grew from 8,000,000 to 8.4 million in 10 years.",
    "Temperature: -40 °C equals -40 °F.",
    "Version 2.0.1 was released on 01/02/2023.",
    "The flight departs at 07:45 and lands at 13:20 local time.",
    "1 2 3 4 5 6 7 8 9 10",
    "42",
    "3.5% interest on a €250,000 mortgage over 25 years",
    "The room is 4.5 m × 3.2 m, about 14.4 m².",
    # code-ish
    "fn main() { println!(\"Hello, world!\"); }",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days';",
    "for i in range(10): print(i ** 2)",
    "git commit -m \"fix: handle empty input\" && git push origin main",
    "const x = arr.map((v) => v * 2).filter(Boolean);",
    "https://example.com/path/to/page?query=rust&lang=en#section-2",
    "user.name+tag@example.org",
    "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "<div class=\"container\"><p>Hello</p></div>",
    "C:\\Program Files\\App\\bin\\app.exe --verbose",
    "snake_case_identifier camelCaseIdentifier PascalCaseIdentifier kebab-case-identifier",
    "#include <stdio.h>\nint main(void) { return 0; }",
    "ERROR 2024-05-01T12:00:00Z [worker-3] connection refused (os error 111)",
    # punctuation
    "Wait... what?!",
    "Well -- I suppose -- that's fine; isn't it?",
    "\"Quoted text,\" she said, 'with nested quotes.'",
    "(parentheses) [brackets] {braces} <angles>",
    "!!!???...,,,;;;:::",
    "#hashtag @mention $money %percent ^caret &ampersand *star",
    "Hello , world ! How are you ?",
    "one/two\\three|four~five`six",
    "“Smart quotes” and ‘single smart quotes’ — with an em dash – and en dash…",
    # accents and non-ASCII Latin
    "I had a café au lait in a small café near the Zürich train station.",
    "Her naïve approach to the résumé surprised the recruiter.",
    "The façade of the château was restored in 1998.",
    "São Paulo, Kraków, Malmö, Reykjavík and Ærøskøbing",
    "Ångström, jalapeño, piñata, crème brûlée, smörgåsbord",
    "Straße, Fußgängerübergänge, Größe",
    "İstanbul and ıstanbul are spelled with different i's.",
    "Œuvre, Æsir, Ðorđe, Þórr",
    "Dvořák composed the New World Symphony.",
    "CAFÉ NAÏVE ZÜRICH",
    "cafe naive zurich",
    # other scripts
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    # CJK
    "你好，世界",
    "我喜欢学习机器学习和自然语言处理。",
    "こんにちは世界",
    "東京は日本の首都です。",
    "안녕하세요 세계",
    "The word for cat is 猫 in Japanese and Chinese.",
    # emoji
    "I love pizza 🍕🍕🍕",
    "👍",
    "Great job! 🎉👏",
    "Family: 👨‍👩‍👧‍👦",
    "Flags: 🇫🇷 🇯🇵 🇧🇷",
    "Thumbs up with skin tone: 👍🏽",
    "❤️ love ❤ heart ♥",
    # all caps
    "THIS IS AN ALL CAPS SENTENCE.",
    "WARNING: DO NOT OPEN THE DOOR WHILE THE MACHINE IS RUNNING!",
    "NASA, FBI, UNESCO and the WHO are acronyms.",
    "ThIs SeNtEnCe HaS mIxEd CaSe.",
    # repeated words
    "the the the the the the the the",
    "very very very very very important",
    "buffalo buffalo buffalo buffalo buffalo buffalo buffalo buffalo",
    "ha" * 40,
    "Go go go! Run run run!",
    # whitespace oddities
    "   leading spaces",
    "trailing spaces   ",
    "multiple     spaces    between   words",
    "tabs\tbetween\twords",
    "line one\nline two\nline three",
    "windows\r\nline\r\nendings",
    "non\u00a0breaking\u00a0spaces",
    "zero\u200bwidth\u200bspace",
    "soft\u00adhyphen and zero\u200dwidth\u200djoiner",
    " ",
    "\n\t\n",
    "control\u0007char and replacement\ufffdchar",
    "combining accent: cafe\u0301 vs café",
    "fullwidth: Ｈｅｌｌｏ　Ｗｏｒｌｄ １２３",
    # long words, misc
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word.",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch railway station",
    "Mixed languages: the word Schadenfreude, le déjà vu, and 侘寂 (wabi-sabi).",
    "asdfghjkl qwertyuiop zxcvbnm",
    "lorem ipsum dolor sit amet, consectetur adipiscing elit",
    "To be, or not to be, that is the question.",
    "I saw her duck.",
    "The bank of the river was muddy.",
    "The bank approved my loan application.",
    "Machine learning models require large amounts of training data.",
    "Deep neural networks learn hierarchical representations of data.",
    "Sentence embeddings are useful for semantic search and clustering.",
    "The weather forecast predicts sunshine for the weekend.",
    "A cheetah is running behind its prey.",
    "A monkey is playing drums.",
] + PASSAGES + OVERLONG


def check_list() -> None:
    texts = SENTENCES
    if len(texts) < 120:
        raise SystemExit(f"only {len(texts)} sentences")
    if len(set(texts)) != len(texts):
        dup = sorted({t for t in texts if texts.count(t) > 1})
        raise SystemExit(f"duplicate sentences: {dup!r}")
    for p in PASSAGES:
        n = len(p.split())
        if not 150 <= n <= 250:
            raise SystemExit(f"passage of {n} words (want 150-250): {p[:60]!r}")


def token_count(model, text: str) -> int:
    # The same tokenisation encode() uses (max_seq_length truncation, specials).
    fn = getattr(model, "preprocess", None) or model.tokenize
    feats = fn([text])
    return int(feats["attention_mask"].sum())


def main() -> int:
    ap = argparse.ArgumentParser(description="write all-MiniLM-L6-v2 reference vectors")
    ap.add_argument("--model", required=True, help="local sentence-transformers model folder")
    ap.add_argument("--out", required=True, help="output JSON path")
    args = ap.parse_args()
    check_list()

    import numpy as np
    import torch
    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(args.model, device="cpu", local_files_only=True)
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()

    items = []
    vecs = []
    with torch.inference_mode():
        for text in SENTENCES:
            v = model.encode([text], batch_size=1, normalize_embeddings=True,
                             show_progress_bar=False, convert_to_numpy=True)[0]
            if v.shape != (384,):
                raise SystemExit(f"unexpected shape {v.shape}")
            vecs.append(v)
            items.append({
                "text": text,
                "tokens": token_count(model, text),
                "vector": [float(f"{float(x):.7g}") for x in v],
            })
        # Sanity: batched encoding (padding inside a batch) agrees.
        batched = model.encode(SENTENCES, batch_size=32, normalize_embeddings=True,
                               show_progress_bar=False, convert_to_numpy=True)
    diff = float(np.abs(batched - np.stack(vecs)).max())

    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_seq_length": MAX_SEQ_LENGTH,
        "normalize": True,
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "items": items,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    # Compact JSON, but one item per line so that diffs stay readable.
    dumps = lambda o: json.dumps(o, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    head = dumps({k: v for k, v in doc.items() if k != "items"})[:-1]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(head + ',"items":[\n')
        f.write(",\n".join(dumps(it) for it in items))
        f.write("\n]}\n")
    with open(args.out, encoding="utf-8") as f:
        if json.load(f) != doc:
            raise SystemExit("written JSON does not read back equal")

    toks = [it["tokens"] for it in items]
    print(f"{len(items)} items -> {args.out} ({os.path.getsize(args.out)} bytes); "
          f"tokens min {min(toks)} max {max(toks)}, >128: {sum(t > 128 for t in toks)}, "
          f"=256 (truncated): {sum(t == MAX_SEQ_LENGTH for t in toks)}; "
          f"max |batched - single| = {diff:.2e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
