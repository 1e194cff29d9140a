"""Grouping's pure parts: places and their adjectives, ties that explain themselves,
and how an incident's later alerts are threaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.detection import analyze, detect_claim
from bot.incident_join import thread_alerts
from bot.incidents import ChannelInfo, Features, decide, features_of, text_features
from bot.incidents.grouping import Candidate, assess
from bot.incidents.places import places_in
from storage.outbox import NewAlert

T0 = datetime(2023, 6, 2, 8, 0, tzinfo=UTC)
LEGION = ChannelInfo(1, "legion", "Легион «Свобода России»")
GOV = ChannelInfo(2, "vvgladkov", "Вячеслав Гладков")
NEWS = ChannelInfo(3, "news", "Новости")


def feat(post_id: int, channel: ChannelInfo, text: str, minutes: int = 0, **kw) -> Features:
    analysis = analyze(text)
    verdict = detect_claim(analysis)
    return features_of(
        post_id=post_id,
        channel_id=channel.id,
        msg_id=post_id,
        date=T0 + timedelta(minutes=minutes),
        text=text,
        found=text_features(analysis),
        label=verdict.label,
        count=verdict.count,
        **kw,
    )


def test_places_are_lemmatized_names_and_villages_after_a_preposition() -> None:
    names = [p.name for p in places_in(analyze("Бои у Новой Таволжанки и в Шебекино."))]
    assert names == ["Новая Таволжанка", "Шебекино"]
    assert [p.broad for p in places_in(analyze("Обстрел Белгорода"))] == [True]
    # people, institutions and adjectives are not places
    assert places_in(analyze("Сообщили в Минобороны. Встреча у Марии Захаровой.")) == ()


def test_a_posts_words_names_and_adjective_stems() -> None:
    found = text_features(
        analyze(
            "РДК сообщает: бойцы взяли в плен двоих у Шебекино. Белгородский губернатор "
            "Гладков и NATO молчат, это было 2 июня."
        )
    )
    # content words: no numbers, stop words (это, быть), words under three letters or
    # words the dictionary tags as no noun, verb, adjective or numeral; Latin words count
    assert found.words == {
        "nato", "белгородский", "боец", "взять", "гладков", "губернатор", "двое", "июнь",
        "молчать", "плен", "сообщать", "шебекино",
    }  # fmt: skip
    # names: capitalized inside a sentence, or all capitals (РДК) at its start; not
    # "Белгородский", which only starts its sentence
    assert found.names == {"nato", "гладков", "рдк", "шебекино"}
    assert found.adjectives == {"белгород", "белгородс", "белгородск"}


def test_an_adjective_meets_the_place_it_is_built_on() -> None:
    claim = feat(1, LEGION, "Бойцы взяли в плен двоих военнослужащих у Шебекино.")
    later = feat(2, NEWS, "Шебекинский округ: жители сообщают о бое.", minutes=60)
    ties = assess(later, NEWS, Candidate(10, [claim], {1: LEGION}))
    assert [(t.kind, t.detail) for t in ties if t.kind == "place"] == [
        ("place", "Шебекино (adjective)")
    ]


def test_a_place_ties_to_the_first_member_naming_it_and_weighs_by_who_named_it() -> None:
    summary = feat(  # a claim naming many villages: its places tie weakly
        1, LEGION, "Взяли в плен бойцов у Шебекино, у Козинки, у Глотово и у Новой Таволжанки."
    )
    claim = feat(2, LEGION, "Легион взял в плен двоих у Козинки.", minutes=10)
    answer = feat(3, GOV, "В Козинке обстрел, есть раненые.", minutes=20)
    members = [summary, claim, answer]
    candidate = Candidate(10, members, {1: LEGION, 2: GOV})

    def place_ties(text: str, minutes: int) -> list[tuple[str, float]]:
        post = feat(9, NEWS, text, minutes)
        return [(t.detail, t.score) for t in assess(post, NEWS, candidate) if t.kind == "place"]

    # named by a claim within a day: the strongest; the place as that claim names it
    assert place_ties("Бой у Козинки продолжается.", 60) == [("Козинка", 0.8)]
    assert place_ties("Бой у Козинки продолжается.", 60 * 30) == [("Козинка", 0.6)]
    # named only by the summary and by no claim of two places or fewer: a plain place tie
    assert place_ties("Обстрел Глотово.", 60) == [("Глотово", 0.3)]
    assert place_ties("Погода в Москве.", 60) == []
    assert place_ties("Новости дня.", 60) == []  # no place, no adjective: nothing asked


def test_mentions_are_found_only_where_their_marks_are() -> None:
    from bot.incidents.features import mentions

    handles, links = mentions(
        "Источник: @legion_ru и https://t.me/rdk_news/123, не t.me/joinchat/xyz; "
        "почта press@mail.ru",
        ["https://telegram.me/s/gladkov_vv/77"],
    )
    assert handles == {"legion_ru", "rdk_news", "gladkov_vv"}
    assert links == {"rdk_news/123", "gladkov_vv/77"}
    assert mentions("Без ссылок и имён.") == (frozenset(), frozenset())
    assert mentions("Ссылка в описании", ["https://t.me/c/1234/5"]) == (frozenset(), frozenset())


def test_decisions_say_why() -> None:
    claim = feat(1, LEGION, "Легион взял в плен двух военнослужащих у Новой Таволжанки.")
    assert decide(claim, LEGION, []).action == "open"
    repost = feat(2, NEWS, "Легион взял в плен двух военнослужащих.", 5, fwd_key="1/1")
    joined = decide(repost, NEWS, [Candidate(10, [claim], {1: LEGION})])
    assert (joined.action, joined.incident_id, joined.score) == ("join", 10, 1.0)
    assert joined.ties[0].kind == "forward" and joined.ties[0].member == 1
    other = feat(3, NEWS, "ВСУ взяли в плен троих у Работино.", 90)
    refused = decide(other, NEWS, [Candidate(10, [claim], {1: LEGION})])
    assert refused.action == "open"  # another village: its own incident
    ties = assess(other, NEWS, Candidate(10, [claim], {1: LEGION}))
    assert ("place", -0.8) in [(t.kind, t.score) for t in ties]
    unrelated = feat(4, NEWS, "Погода в Москве: снег и гололёд.", 30)
    assert decide(unrelated, NEWS, [Candidate(10, [claim], {1: LEGION})]).action == "alone"
    too_late = feat(5, NEWS, "Под Новой Таволжанкой идёт бой.", 60 * 24 * 4)
    assert assess(too_late, NEWS, Candidate(10, [claim], {1: LEGION})) == []  # out of window


def _row(chat: int, post: int, story: str = "") -> NewAlert:
    return NewAlert(chat, post, "alert", story or f"1/{post}", {"text": "x"})


def test_later_alerts_reply_to_the_first_unless_the_chat_wants_every_post() -> None:
    incident_of = {11: 7, 12: 7, 13: 7}
    rows = [_row(100, 11), _row(100, 12), _row(200, 12), _row(300, 13)]
    out = thread_alerts(rows, incident_of, roots={(7, 300): 11}, every_post={200})
    assert [(r.chat_id, r.reason, r.payload.get("thread")) for r in out] == [
        (100, "alert", None),  # the chat's first alert in the incident
        (100, "incident", 11),  # then replies to it
        (200, "alert", None),  # this chat asked for every post
        (300, "incident", 11),  # alerted before, in an earlier transaction
    ]
    copy = _row(100, 14, story="1/11")  # a forward of a post the chat was told about
    kept = thread_alerts([copy], {14: 7}, {(7, 100): 11}, set(), told={(100, "1/11")})
    assert kept == []


def test_text_similarity_is_datasketchs_minhash_bit_for_bit() -> None:
    import random

    from datasketch import MinHash

    from bot.incidents.minhash import NUM_PERM, resemblance, signature, signature_bytes

    def reference(words: frozenset[str]) -> MinHash:
        signature = MinHash(num_perm=NUM_PERM)
        signature.update_batch([w.encode("utf-8") for w in sorted(words)])
        return signature

    rng = random.Random(7)
    vocabulary = [f"слово{i}" for i in range(300)] + ["пленные", "курская", "ё", "a'b"]
    for _ in range(40):
        a = frozenset(rng.sample(vocabulary, rng.randint(1, 120)))
        b = frozenset(rng.sample(vocabulary, rng.randint(1, 120)))
        values = [
            int.from_bytes(signature_bytes(a)[i : i + 4], "little")
            for i in range(0, 4 * NUM_PERM, 4)
        ]
        assert values == [int(v) for v in reference(a).hashvalues]
        assert resemblance(signature(a), signature(b)) == reference(a).jaccard(reference(b))


def test_signatures_made_together_are_each_sets_own_signature(monkeypatch) -> None:
    import random

    from bot.incidents import minhash

    rng = random.Random(11)
    vocabulary = [f"слово{i}" for i in range(400)] + ["пленные", "курская", "ё"]
    sets = [frozenset(rng.sample(vocabulary, rng.randint(0, 40))) for _ in range(60)]
    sets += [frozenset(), frozenset(vocabulary[:120]), frozenset({"один"})]
    rng.shuffle(sets)
    expected = [minhash.signature(s) for s in sets]
    assert minhash.signatures(sets) == expected
    assert expected.count(0) == sum(1 for s in sets if not s)
    monkeypatch.setattr(minhash, "_WORDS_PER_PASS", 50)  # many passes, one set above it
    assert minhash.signatures(sets) == expected
    assert minhash.signatures([]) == []


def test_a_workers_chunk_carries_each_texts_signature() -> None:
    from bot.incidents.minhash import signature
    from bot.pipeline import detect_chunk

    texts = [
        "Бойцы РДК взяли в плен военнослужащих ВС РФ в Козинке",
        "",
        "Обстрел Шебекино, повреждены дома",
        "Бойцы РДК взяли в плен военнослужащих ВС РФ в Козинке",
    ]
    found = detect_chunk([(t, (1,)) for t in texts], 1, b"", grouped=True)
    features = [d.features for d in found]
    assert all(f is not None for f in features)
    assert [f.signature for f in features] == [signature(f.words) for f in features]
    assert features[0].signature and features[0].signature == features[3].signature
    assert features[1].signature == 0  # no words
    assert features[0].signature != features[2].signature


def test_word_hashes_are_kept_within_their_bound_and_change_no_signature(monkeypatch) -> None:
    from bot.incidents import minhash

    def hashed_afresh(words: frozenset[str]) -> int:
        minhash._HASHES.clear()  # the words of one set are distinct: none from the cache
        return minhash.signature(words)

    words = [frozenset(f"слово{i + k}" for k in range(30)) for i in range(0, 300, 7)]
    fresh = [hashed_afresh(w) for w in words]
    monkeypatch.setattr(minhash, "_HASHES_LIMIT", 16)
    minhash._HASHES.clear()
    for w, expected in zip(words, fresh, strict=True):  # overlapping sets: many from it
        assert minhash.signature(w) == expected
        assert len(minhash._HASHES) <= 16
    assert set(minhash._HASHES) <= set().union(*words[-1:])  # emptied on the way


def test_equal_lanes_counts_equal_32_bit_values_whatever_their_bits() -> None:
    import random

    from bot.incidents.minhash import NUM_PERM, _equal_lanes

    def packed(values: list[int]) -> int:
        return sum(v << (32 * k) for k, v in enumerate(values))

    rng = random.Random(11)
    edges = [0, 1, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF, 0xFFFFFFFE]
    for _ in range(200):
        a = [
            rng.choice(edges) if rng.random() < 0.5 else rng.getrandbits(32)
            for _ in range(NUM_PERM)
        ]
        b = [
            x if rng.random() < 0.4 else rng.choice([rng.choice(edges), x ^ 1, x ^ 0x80000000])
            for x in a
        ]
        expected = sum(x == y for x, y in zip(a, b, strict=True))
        assert _equal_lanes(packed(a), packed(b)) == expected
