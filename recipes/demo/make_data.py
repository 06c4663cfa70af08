"""Writes the demo dataset (data/*.jsonl and data/images/*.png), deterministically.

The text is written for this project: product reviews, short news articles and forum posts in
several languages, with the dirt real web text has: HTML, links, e-mail addresses, repeated
sentences, mojibake, stray whitespace, exact and near duplicates (also across files), snippets
too short to keep, spam, one record without text.  Run ``python recipes/demo/make_data.py`` to
regenerate (the files are committed; the output does not change between runs).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

ELECTRONICS = [
    "I bought these headphones for my daily train commute and they have not left my bag since.",
    "The noise cancelling is good enough that I stopped hearing the announcements, which is both a blessing and a curse.",
    "Battery life is closer to 22 hours than the advertised 30, but that still gets me through a week.",
    "The ear cushions get warm after an hour, so long sessions in summer are not very pleasant.",
    "Pairing with my laptop took two attempts; the phone connected instantly.",
    "Sound is warm with a slightly boosted bass, which suits podcasts and pop but muddies classical recordings.",
    "The companion app asks for far too many permissions for what is basically an equalizer.",
    "After three months the hinge started creaking, although nothing has broken yet.",
    "The charging case is small and the magnets are strong, so the buds never fall out by accident.",
    "Call quality is the weak point: people told me I sounded like I was inside a tunnel.",
    "For the price I expected a metal body, but the plastic feels solid enough.",
    "The keyboard has a pleasant, quiet switch that my colleagues in the open office appreciate.",
    "Backlight brightness has only three levels and the lowest is still too bright at night.",
    "The webcam image is sharp in daylight and noisy as soon as the sun goes down.",
    "Setup took five minutes and the firmware update ran on its own overnight.",
    "The screen is bright enough to read outside, though the glossy finish shows every fingerprint.",
    "Customer support replaced a dead unit within a week without asking for the receipt.",
    "The power adapter whines quietly when the laptop is fully charged.",
    "I use the tablet mostly for reading comics, and the colours are excellent for that.",
    "Speakers are loud but distort above seventy percent volume.",
    "The smartwatch counts steps accurately but its sleep tracking is pure guesswork.",
    "Heart rate readings during interval training lag several seconds behind my chest strap.",
    "The mouse is light, the scroll wheel is precise and the side buttons are easy to reach.",
    "It arrived with a scratch on the display, and the replacement took almost three weeks.",
]

HOME = [
    "The coffee maker brews a full pot in under six minutes and keeps it hot for two hours.",
    "Cleaning the milk frother is fiddly because the small parts do not go in the dishwasher.",
    "Our old kettle took ages; this one boils a litre in about two and a half minutes.",
    "The vacuum handles pet hair on carpet well but struggles with the edges of the room.",
    "The bin fills up quickly, so I empty it after every room.",
    "Assembly of the shelf took an hour, and two of the screws were missing from the bag.",
    "The frying pan heats evenly and nothing sticks, even eggs without butter.",
    "After a few weeks the non-stick coating started to show small scratches.",
    "The mattress was too firm for the first week and then became just right.",
    "The blender crushes ice without effort, but it is loud enough to wake the whole flat.",
    "The air purifier is almost silent on its lowest setting, which makes it usable in the bedroom.",
    "The filter indicator turned red after two months, which seems early.",
    "These towels are soft and thick, and they survived twenty washes without fading.",
    "The lamp's warm light setting is lovely for reading in the evening.",
    "The rice cooker makes perfect jasmine rice, but the manual is only a single page.",
    "The robot mower got stuck twice under the garden bench before I moved it.",
    "The toaster browns one side more than the other, so I flip the bread halfway.",
    "The water filter jug fits in the fridge door, which is rarer than it should be.",
]

ARTICLES = [
    "The city council approved a plan on Tuesday to turn three car lanes on the river road into a protected cycle track.",
    "Construction is expected to start in the spring and to last about eighteen months.",
    "Local shop owners are divided: some fear losing customers who arrive by car, others expect more passers-by.",
    "A survey commissioned by the council found that two thirds of residents support the change.",
    "Researchers at the university have mapped the nesting sites of swifts across the old town for the first time.",
    "Their census counted 412 nests, most of them under the eaves of buildings built before 1950.",
    "Renovations that seal those gaps are the main threat to the birds, the team says.",
    "The regional library will extend its opening hours to 10 p.m. on weekdays from next month.",
    "The move follows a petition signed by more than four thousand students during the exam season.",
    "Heavy rain flooded several underpasses on Sunday night, and two bus lines were diverted until Monday noon.",
    "The weather service expects another band of storms to reach the coast by Thursday.",
    "A new exhibition at the harbour museum tells the story of the port through the letters of dock workers.",
    "Many of the letters were found in a single suitcase donated by a family in 2019.",
    "The museum says the exhibition will travel to two other cities next year.",
    "Prices at the weekly farmers market have risen by about eight percent compared with last year.",
    "Vendors point to higher energy costs and a poor harvest of stone fruit.",
]

FORUM = [
    "Has anyone managed to get the tomato seedlings through a cold spring without a greenhouse?",
    "I start mine on the windowsill in March and only move them outside after the middle of May.",
    "Cover them with fleece at night if the forecast drops below eight degrees.",
    "My basil always dies within two weeks, no matter how much or how little I water it.",
    "Basil hates wet feet: use a pot with a drainage hole and water from below.",
    "Question about Python: why does my list comprehension return a list of None values?",
    "Because list.append returns None; build the list with the comprehension itself instead of appending inside it.",
    "You can also use a plain for loop if the comprehension gets hard to read.",
    "Is it worth upgrading from 16 to 32 GB of RAM for photo editing?",
    "If you work with large panoramas, yes; for ordinary raw files 16 GB is usually fine.",
    "Check the memory pressure graph while editing before you spend money on it.",
    "What is the best way to store sourdough starter when going on holiday for two weeks?",
    "Feed it, let it rise for an hour and put it in the fridge; it will survive a month easily.",
    "Some people dry a thin layer on baking paper as a backup, which keeps for years.",
]

GERMAN = [
    "Die Kopfhörer sitzen bequem und die Geräuschunterdrückung funktioniert im Zug erstaunlich gut.",
    "Der Akku hält bei mir etwa eine Woche, wenn ich täglich zwei Stunden Musik höre.",
    "Leider knarzt das Gelenk schon nach wenigen Wochen, was bei diesem Preis ärgerlich ist.",
    "Die Kaffeemaschine ist schnell aufgebaut und der Kaffee schmeckt kräftig und heiß.",
    "Das Reinigen des Milchaufschäumers dauert länger als das Zubereiten des Kaffees.",
    "Die Lieferung kam zwei Tage früher als angekündigt und war gut verpackt.",
    "Die Bedienungsanleitung ist nur auf Englisch, aber die Symbole sind selbsterklärend.",
    "Für den Alltag reicht das Gerät völlig aus, für Profis würde ich es nicht empfehlen.",
    "Der Stadtrat hat am Dienstag beschlossen, die Uferstraße für den Radverkehr umzubauen.",
    "Die Bauarbeiten sollen im Frühjahr beginnen und etwa anderthalb Jahre dauern.",
]

FRENCH = [
    "Le casque est confortable et la réduction de bruit est efficace dans le métro.",
    "L'autonomie est un peu inférieure à celle annoncée, mais elle reste largement suffisante.",
    "La cafetière prépare un café très chaud et le nettoyage est rapide.",
    "Le service client a remplacé l'appareil défectueux en moins d'une semaine.",
    "Le son est chaleureux, avec des basses un peu trop présentes à mon goût.",
    "La notice est claire et le montage ne prend que quelques minutes.",
    "Après deux mois, le revêtement de la poêle commence déjà à se rayer.",
    "Le conseil municipal a approuvé mardi la création d'une piste cyclable le long du fleuve.",
    "Les commerçants du quartier restent partagés sur les effets de ce projet.",
]

SPANISH = [
    "Los auriculares son cómodos y la cancelación de ruido funciona muy bien en el autobús.",
    "La batería dura casi una semana con un uso moderado de dos horas al día.",
    "La cafetera es fácil de limpiar y el café sale muy caliente.",
    "El envío llegó antes de lo previsto y el embalaje estaba en perfecto estado.",
    "La aplicación pide demasiados permisos para lo que realmente ofrece.",
    "Después de tres meses la bisagra empezó a crujir, aunque todavía funciona.",
    "El ayuntamiento aprobó el martes un carril bici protegido junto al río.",
    "Muchos vecinos creen que la obra mejorará la vida del barrio.",
]

CHINESE = [
    "这款耳机佩戴舒适，降噪效果在地铁上非常明显。",
    "电池续航比宣传的短一些，但每天通勤使用一周没有问题。",
    "咖啡机加热很快，做出来的咖啡味道浓郁。",
    "客服态度很好，一周之内就给我换了新机。",
    "低音有点重，听古典音乐时不够清晰。",
    "包装很结实，送货比预计早了两天。",
    "用了三个月以后，铰链开始有点响，不过还能正常使用。",
    "市议会周二通过了沿河修建自行车道的计划。",
]

OTHER = [  # languages the demo recipe does not keep
    "De koptelefoon zit prettig en de ruisonderdrukking werkt goed in de trein.",
    "Słuchawki są wygodne, a bateria wytrzymuje prawie tydzień.",
    "Le cuffie sono comode e la batteria dura quasi una settimana intera.",
    "Kulaklıklar rahat ve pil ömrü neredeyse bir hafta sürüyor.",
]

SHORT = ["Great!!!", "ok", "Five stars.", "meh", "Would buy again", "A+++", "Not bad", "👍👍"]
SPAM = [
    "BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW BUY NOW",
    "best price best price best price best price best price best price best price best price click here",
    "$$$ $$$ $$$ !!! ### @@@ %%% $$$ !!! ### @@@ %%% $$$ !!! ### @@@ %%% $$$ !!! ### @@@ %%%",
]
SHOPS = ["https://www.shop-example.com/p/{n}?ref=review", "http://reviews.example.net/item/{n}",
         "www.deals-example.org/offer/{n}", "https://example.com/blog/{n}.html"]
PEOPLE = ["anna.meyer", "j.smith", "lucie.martin", "carlos.ruiz", "wei.chen", "support", "info"]
DOMAINS = ["example.org", "mail.example.com", "example.net"]
MOJIBAKE = {"é": "Ã©", "ü": "Ã¼", "ö": "Ã¶", "’": "â€™", "–": "â€“"}


def sample_text(rng: random.Random, pool: list[str], lo: int, hi: int) -> str:
    return " ".join(rng.sample(pool, k=min(rng.randint(lo, hi), len(pool))))


def dirty(rng: random.Random, text: str) -> str:
    sentences = text.split(". ")
    if len(sentences) > 2 and rng.random() < 0.2:  # a sentence repeated, as copy-paste leaves it
        i = rng.randrange(len(sentences) - 1)
        sentences.insert(i + 1, sentences[i])
        text = ". ".join(sentences)
    if rng.random() < 0.25:
        text += f" More photos: {rng.choice(SHOPS).format(n=rng.randint(1000, 99999))}"
    if rng.random() < 0.12:
        text += f" Questions? Write to {rng.choice(PEOPLE)}@{rng.choice(DOMAINS)}."
    if rng.random() < 0.3:
        paras = text.split(". ")
        text = "<div class=\"review-body\"><p>" + ".</p>\n<p>".join(paras) + "</p></div>"
        text = text.replace(" and ", " &amp; ", 1)
    if rng.random() < 0.2:
        text = text.replace(" ", "  ", 3).replace(". ", ".\t\n ", 1) + " \u00a0"
    if rng.random() < 0.06:
        for good, bad in MOJIBAKE.items():
            text = text.replace(good, bad)
        text = text.replace("'", "â€™")
    return text


def rows_for(rng: random.Random, source: str, prefix: str, pools: list[tuple[list[str], float]], n: int,
             images: list[str], earlier: list[str]) -> list[dict]:
    rows = []
    weights = [w for _, w in pools]
    for i in range(n):
        roll = rng.random()
        if roll < 0.07 and earlier:  # exact duplicate of an earlier record, maybe from another file
            text = rng.choice(earlier)
        elif roll < 0.10 and earlier:  # near duplicate: only case and punctuation differ
            text = rng.choice(earlier).upper().replace(".", "!")
        elif roll < 0.15:
            text = rng.choice(SHORT)
        elif roll < 0.17:
            text = rng.choice(SPAM)
        elif roll < 0.20:
            text = sample_text(rng, OTHER, 2, 3)
        else:
            pool = rng.choices([p for p, _ in pools], weights=weights)[0]
            text = dirty(rng, sample_text(rng, pool, 3, 7))
        row = {"text": text, "meta": {"source": source, "id": f"{prefix}-{i:04d}", "rating": rng.randint(1, 5)}}
        if images and rng.random() < 0.15:
            row["images"] = [f"images/{rng.choice(images)}"]
            row["text"] = "<__dj__image> " + row["text"]
        rows.append(row)
        if len(text) > 80:
            earlier.append(text)
    return rows


def make_images(folder: Path) -> list[str]:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    specs = [("headphones", (40, 40, 48), "ellipse"), ("coffee_maker", (120, 72, 40), "rectangle"),
             ("kettle", (200, 200, 210), "ellipse"), ("lamp", (250, 210, 90), "polygon"),
             ("frying_pan", (30, 30, 30), "ellipse"), ("smartwatch", (60, 90, 160), "rectangle")]
    names = []
    for name, color, shape in specs:
        img = Image.new("RGB", (96, 96), (236, 236, 232))
        draw = ImageDraw.Draw(img)
        if shape == "ellipse":
            draw.ellipse((18, 18, 78, 78), fill=color, outline=(0, 0, 0))
        elif shape == "rectangle":
            draw.rectangle((24, 14, 72, 82), fill=color, outline=(0, 0, 0))
        else:
            draw.polygon([(48, 10), (80, 70), (16, 70)], fill=color, outline=(0, 0, 0))
        draw.line((10, 88, 86, 88), fill=(150, 150, 150), width=2)
        img.save(folder / f"{name}.png", optimize=True)
        names.append(f"{name}.png")
    return names


def main() -> None:
    rng = random.Random(20240611)
    DATA.mkdir(parents=True, exist_ok=True)
    images = make_images(DATA / "images")
    earlier: list[str] = []
    files = {
        "reviews_electronics.jsonl": rows_for(rng, "shop-reviews", "el", [(ELECTRONICS, 6), (GERMAN, 1), (FRENCH, 1),
                                                                           (SPANISH, 1), (CHINESE, 1)], 130, images, earlier),
        "reviews_home.jsonl": rows_for(rng, "shop-reviews", "ho", [(HOME, 6), (GERMAN, 1), (FRENCH, 1), (CHINESE, 1)],
                                       80, images, earlier),
        "articles.jsonl": rows_for(rng, "city-news", "ar", [(ARTICLES, 8), (GERMAN, 1), (FRENCH, 1), (SPANISH, 1)],
                                   60, [], earlier),
        "forum.jsonl": rows_for(rng, "forum", "fo", [(FORUM, 1)], 60, [], earlier),
    }
    files["forum.jsonl"].insert(17, {"text": None, "meta": {"source": "forum", "id": "fo-broken", "rating": 3}})
    for name, rows in files.items():
        with open(DATA / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{DATA / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
