"""Word lists for realistic product names and customer emails, per language.

Data only; `naming.py` assembles it. Products are built from *concepts* (one noun,
material, adjective...) so that all translations of one product describe the same
thing. German, French and Spanish adjectives agree with the noun, hence the genders:
de m/f/n/pl, fr and es m/f/mpl/fpl. Adjective entries are (masculine, feminine)
stems; `naming.py` derives the other forms.
"""
from __future__ import annotations

# Languages with a full vocabulary; any other locale falls back to English words.
LANGUAGES = ("en", "de", "fr", "es", "ja")

# category -> (SKU prefix, price range in cents, nouns, materials)
# noun: {lang: word or (word, gender)}; material: {lang: word}
CATEGORIES: dict[str, dict] = {
    "kitchen": {
        "sku": "KIT",
        "price": (690, 8900),
        "nouns": [
            {"en": "Mug", "de": ("Tasse", "f"), "fr": ("Tasse", "f"), "es": ("Taza", "f"), "ja": "マグカップ"},
            {"en": "Teapot", "de": ("Teekanne", "f"), "fr": ("Théière", "f"), "es": ("Tetera", "f"), "ja": "ティーポット"},
            {"en": "Salad Bowl", "de": ("Salatschüssel", "f"), "fr": ("Saladier", "m"), "es": ("Ensaladera", "f"), "ja": "サラダボウル"},
            {"en": "Dinner Plates", "de": ("Essteller", "pl"), "fr": ("Assiettes plates", "fpl"), "es": ("Platos llanos", "mpl"), "ja": "ディナープレート"},
            {"en": "Cutting Board", "de": ("Schneidebrett", "n"), "fr": ("Planche à découper", "f"), "es": ("Tabla de cortar", "f"), "ja": "まな板"},
            {"en": "Frying Pan", "de": ("Bratpfanne", "f"), "fr": ("Poêle", "f"), "es": ("Sartén", "f"), "ja": "フライパン"},
            {"en": "Coffee Grinder", "de": ("Kaffeemühle", "f"), "fr": ("Moulin à café", "m"), "es": ("Molinillo de café", "m"), "ja": "コーヒーミル"},
            {"en": "Water Bottle", "de": ("Trinkflasche", "f"), "fr": ("Gourde", "f"), "es": ("Botella de agua", "f"), "ja": "水筒"},
            {"en": "Chopsticks", "de": ("Essstäbchen", "pl"), "fr": ("Baguettes", "fpl"), "es": ("Palillos", "mpl"), "ja": "箸"},
        ],
        "materials": [
            {"en": "Ceramic", "de": "Keramik", "fr": "céramique", "es": "cerámica", "ja": "陶器"},
            {"en": "Glass", "de": "Glas", "fr": "verre", "es": "vidrio", "ja": "ガラス"},
            {"en": "Bamboo", "de": "Bambus", "fr": "bambou", "es": "bambú", "ja": "竹"},
            {"en": "Stainless Steel", "de": "Edelstahl", "fr": "inox", "es": "acero inoxidable", "ja": "ステンレス"},
            {"en": "Cast Iron", "de": "Gusseisen", "fr": "fonte", "es": "hierro fundido", "ja": "鋳鉄"},
            {"en": "Oak", "de": "Eichenholz", "fr": "chêne", "es": "roble", "ja": "オーク材"},
        ],
    },
    "apparel": {
        "sku": "APP",
        "price": (1490, 18900),
        "nouns": [
            {"en": "T-Shirt", "de": ("T-Shirt", "n"), "fr": ("T-shirt", "m"), "es": ("Camiseta", "f"), "ja": "Tシャツ"},
            {"en": "Sweater", "de": ("Pullover", "m"), "fr": ("Pull", "m"), "es": ("Jersey", "m"), "ja": "セーター"},
            {"en": "Scarf", "de": ("Schal", "m"), "fr": ("Écharpe", "f"), "es": ("Bufanda", "f"), "ja": "マフラー"},
            {"en": "Socks", "de": ("Socken", "pl"), "fr": ("Chaussettes", "fpl"), "es": ("Calcetines", "mpl"), "ja": "靴下"},
            {"en": "Hoodie", "de": ("Kapuzenpullover", "m"), "fr": ("Sweat à capuche", "m"), "es": ("Sudadera con capucha", "f"), "ja": "パーカー"},
            {"en": "Shirt", "de": ("Hemd", "n"), "fr": ("Chemise", "f"), "es": ("Camisa", "f"), "ja": "シャツ"},
            {"en": "Beanie", "de": ("Mütze", "f"), "fr": ("Bonnet", "m"), "es": ("Gorro", "m"), "ja": "ニット帽"},
            {"en": "Pyjamas", "de": ("Schlafanzug", "m"), "fr": ("Pyjama", "m"), "es": ("Pijama", "m"), "ja": "パジャマ"},
        ],
        "materials": [
            {"en": "Organic Cotton", "de": "Bio-Baumwolle", "fr": "coton bio", "es": "algodón orgánico", "ja": "オーガニックコットン"},
            {"en": "Merino Wool", "de": "Merinowolle", "fr": "laine mérinos", "es": "lana merino", "ja": "メリノウール"},
            {"en": "Linen", "de": "Leinen", "fr": "lin", "es": "lino", "ja": "リネン"},
            {"en": "Cashmere", "de": "Kaschmir", "fr": "cachemire", "es": "cachemira", "ja": "カシミヤ"},
            {"en": "Fleece", "de": "Fleece", "fr": "polaire", "es": "forro polar", "ja": "フリース"},
        ],
    },
    "bags": {
        "sku": "BAG",
        "price": (1990, 24900),
        "nouns": [
            {"en": "Backpack", "de": ("Rucksack", "m"), "fr": ("Sac à dos", "m"), "es": ("Mochila", "f"), "ja": "リュックサック"},
            {"en": "Wallet", "de": ("Geldbörse", "f"), "fr": ("Portefeuille", "m"), "es": ("Cartera", "f"), "ja": "財布"},
            {"en": "Tote Bag", "de": ("Einkaufstasche", "f"), "fr": ("Sac cabas", "m"), "es": ("Bolso tote", "m"), "ja": "トートバッグ"},
            {"en": "Belt", "de": ("Gürtel", "m"), "fr": ("Ceinture", "f"), "es": ("Cinturón", "m"), "ja": "ベルト"},
            {"en": "Laptop Sleeve", "de": ("Laptophülle", "f"), "fr": ("Housse d'ordinateur", "f"), "es": ("Funda para portátil", "f"), "ja": "PCケース"},
            {"en": "Weekender Bag", "de": ("Reisetasche", "f"), "fr": ("Sac de voyage", "m"), "es": ("Bolsa de viaje", "f"), "ja": "ボストンバッグ"},
        ],
        "materials": [
            {"en": "Leather", "de": "Leder", "fr": "cuir", "es": "cuero", "ja": "本革"},
            {"en": "Canvas", "de": "Canvas", "fr": "toile", "es": "lona", "ja": "キャンバス"},
            {"en": "Recycled Nylon", "de": "recyceltem Nylon", "fr": "nylon recyclé", "es": "nailon reciclado", "ja": "再生ナイロン"},
            {"en": "Waxed Cotton", "de": "gewachster Baumwolle", "fr": "coton ciré", "es": "algodón encerado", "ja": "ワックスコットン"},
        ],
    },
    "home": {
        "sku": "HOM",
        "price": (990, 29900),
        "nouns": [
            {"en": "Table Lamp", "de": ("Tischlampe", "f"), "fr": ("Lampe de table", "f"), "es": ("Lámpara de mesa", "f"), "ja": "テーブルランプ"},
            {"en": "Cushion Cover", "de": ("Kissenbezug", "m"), "fr": ("Housse de coussin", "f"), "es": ("Funda de cojín", "f"), "ja": "クッションカバー"},
            {"en": "Throw Blanket", "de": ("Wohndecke", "f"), "fr": ("Plaid", "m"), "es": ("Manta", "f"), "ja": "ブランケット"},
            {"en": "Vase", "de": ("Vase", "f"), "fr": ("Vase", "m"), "es": ("Jarrón", "m"), "ja": "花瓶"},
            {"en": "Scented Candle", "de": ("Duftkerze", "f"), "fr": ("Bougie parfumée", "f"), "es": ("Vela aromática", "f"), "ja": "アロマキャンドル"},
            {"en": "Wall Clock", "de": ("Wanduhr", "f"), "fr": ("Horloge murale", "f"), "es": ("Reloj de pared", "m"), "ja": "掛け時計"},
            {"en": "Storage Basket", "de": ("Aufbewahrungskorb", "m"), "fr": ("Panier de rangement", "m"), "es": ("Cesta de almacenaje", "f"), "ja": "収納バスケット"},
        ],
        "materials": [
            {"en": "Linen", "de": "Leinen", "fr": "lin", "es": "lino", "ja": "リネン"},
            {"en": "Rattan", "de": "Rattan", "fr": "rotin", "es": "ratán", "ja": "ラタン"},
            {"en": "Walnut", "de": "Walnussholz", "fr": "noyer", "es": "nogal", "ja": "ウォールナット"},
            {"en": "Stoneware", "de": "Steingut", "fr": "grès", "es": "gres", "ja": "ストーンウェア"},
            {"en": "Brass", "de": "Messing", "fr": "laiton", "es": "latón", "ja": "真鍮"},
        ],
    },
    "electronics": {
        "sku": "ELE",
        "price": (1990, 39900),
        "nouns": [
            {"en": "Bluetooth Speaker", "de": ("Bluetooth-Lautsprecher", "m"), "fr": ("Enceinte Bluetooth", "f"), "es": ("Altavoz Bluetooth", "m"), "ja": "Bluetoothスピーカー"},
            {"en": "Wireless Headphones", "de": ("Funkkopfhörer", "pl"), "fr": ("Casque sans fil", "m"), "es": ("Auriculares inalámbricos", "mpl"), "ja": "ワイヤレスヘッドホン"},
            {"en": "USB-C Charger", "de": ("USB-C-Ladegerät", "n"), "fr": ("Chargeur USB-C", "m"), "es": ("Cargador USB-C", "m"), "ja": "USB-C充電器"},
            {"en": "Mechanical Keyboard", "de": ("Tastatur", "f"), "fr": ("Clavier mécanique", "m"), "es": ("Teclado mecánico", "m"), "ja": "メカニカルキーボード"},
            {"en": "Desk Lamp", "de": ("Schreibtischlampe", "f"), "fr": ("Lampe de bureau", "f"), "es": ("Lámpara de escritorio", "f"), "ja": "デスクライト"},
            {"en": "Power Bank", "de": ("Powerbank", "f"), "fr": ("Batterie externe", "f"), "es": ("Batería externa", "f"), "ja": "モバイルバッテリー"},
        ],
        "materials": [
            {"en": "Aluminium", "de": "Aluminium", "fr": "aluminium", "es": "aluminio", "ja": "アルミ"},
            {"en": "Recycled Plastic", "de": "recyceltem Kunststoff", "fr": "plastique recyclé", "es": "plástico reciclado", "ja": "再生プラスチック"},
            {"en": "Walnut", "de": "Walnussholz", "fr": "noyer", "es": "nogal", "ja": "ウォールナット"},
        ],
    },
}

# Adjectives fitting every category. de: stem taking the strong ending (-er/-e/-es);
# fr and es: (masculine, feminine); ja: a prefix.
ADJECTIVES: list[dict] = [
    {"en": "Classic", "de": "Klassisch", "fr": ("classique", "classique"), "es": ("clásico", "clásica"), "ja": "クラシック"},
    {"en": "Elegant", "de": "Elegant", "fr": ("élégant", "élégante"), "es": ("elegante", "elegante"), "ja": "エレガントな"},
    {"en": "Modern", "de": "Modern", "fr": ("moderne", "moderne"), "es": ("moderno", "moderna"), "ja": "モダン"},
    {"en": "Vintage", "de": "Nostalgisch", "fr": ("vintage", "vintage"), "es": ("vintage", "vintage"), "ja": "ヴィンテージ"},
    {"en": "Minimalist", "de": "Minimalistisch", "fr": ("minimaliste", "minimaliste"), "es": ("minimalista", "minimalista"), "ja": "ミニマル"},
    {"en": "Handmade", "de": "Handgemacht", "fr": ("artisanal", "artisanale"), "es": ("artesanal", "artesanal"), "ja": "手作り"},
    {"en": "Premium", "de": "Hochwertig", "fr": ("haut de gamme", "haut de gamme"), "es": ("premium", "premium"), "ja": "上質な"},
    {"en": "Scandinavian", "de": "Skandinavisch", "fr": ("scandinave", "scandinave"), "es": ("escandinavo", "escandinava"), "ja": "北欧風"},
    {"en": "Compact", "de": "Kompakt", "fr": ("compact", "compacte"), "es": ("compacto", "compacta"), "ja": "コンパクト"},
    {"en": "Lightweight", "de": "Leicht", "fr": ("léger", "légère"), "es": ("ligero", "ligera"), "ja": "軽量"},
    {"en": "Durable", "de": "Robust", "fr": ("robuste", "robuste"), "es": ("resistente", "resistente"), "ja": "丈夫な"},
    {"en": "Japanese-Style", "de": "Japanisch", "fr": ("japonais", "japonaise"), "es": ("japonés", "japonesa"), "ja": "和風"},
    {"en": "Eco-Friendly", "de": "Nachhaltig", "fr": ("écologique", "écologique"), "es": ("ecológico", "ecológica"), "ja": "エコ"},
    {"en": "Everyday", "de": "Praktisch", "fr": ("pratique", "pratique"), "es": ("práctico", "práctica"), "ja": "毎日使える"},
]

COLORS: list[dict] = [
    {"en": "Black", "de": "Schwarz", "fr": ("noir", "noire"), "es": ("negro", "negra"), "ja": "ブラック"},
    {"en": "White", "de": "Weiß", "fr": ("blanc", "blanche"), "es": ("blanco", "blanca"), "ja": "ホワイト"},
    {"en": "Navy", "de": "Marineblau", "fr": ("bleu marine", "bleu marine"), "es": ("azul marino", "azul marino"), "ja": "ネイビー"},
    {"en": "Forest Green", "de": "Tannengrün", "fr": ("vert forêt", "vert forêt"), "es": ("verde bosque", "verde bosque"), "ja": "フォレストグリーン"},
    {"en": "Sand", "de": "Sandfarben", "fr": ("sable", "sable"), "es": ("arena", "arena"), "ja": "サンドベージュ"},
    {"en": "Charcoal", "de": "Anthrazitfarben", "fr": ("anthracite", "anthracite"), "es": ("antracita", "antracita"), "ja": "チャコール"},
    {"en": "Terracotta", "de": "Terrakottafarben", "fr": ("terracotta", "terracotta"), "es": ("terracota", "terracota"), "ja": "テラコッタ"},
]

# French and Spanish plurals that are not "add -s" (or "-es" after a consonant):
# invariable colour nouns and loanwords, and irregular forms.
PLURALS = {
    "bleu marine": "bleu marine", "vert forêt": "vert forêt", "sable": "sable", "anthracite": "anthracite",
    "terracotta": "terracotta", "vintage": "vintage", "haut de gamme": "haut de gamme",
    "azul marino": "azul marino", "verde bosque": "verde bosque", "arena": "arena", "antracita": "antracita",
    "terracota": "terracota", "premium": "premium", "japonés": "japoneses", "artisanal": "artisanaux",
}

DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "en": ("{name}. Ships within {days} days.", "{name}. Built to last, with free returns within 30 days.",
           "Our bestselling {name}. In stock, ships within {days} days."),
    "de": ("{name}. Versand innerhalb von {days} Tagen.", "{name} – langlebig und zeitlos. 30 Tage kostenlose Rückgabe.",
           "Beliebt: {name}. Auf Lager, Lieferung in {days} Tagen."),
    "fr": ("{name}. Expédié sous {days} jours.", "{name}. Qualité durable, retours gratuits sous 30 jours.",
           "Best-seller : {name}. En stock, livraison sous {days} jours."),
    "es": ("{name}. Envío en {days} días.", "{name}. Calidad duradera, devoluciones gratuitas en 30 días.",
           "El más vendido: {name}. En stock, envío en {days} días."),
    "ja": ("{name}。{days}日以内に発送します。", "{name}。長く使える定番アイテムです。30日間返品無料。",
           "人気商品：{name}。在庫あり、{days}日以内にお届けします。"),
}

# Customer names, ASCII, as they appear in email addresses.
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("james", "olivia", "liam", "emma", "noah", "amelia", "oliver", "sophia", "jack", "isla",
           "harry", "grace", "george", "chloe", "ethan", "mia", "lucas", "ella", "henry", "ava"),
    "de": ("lukas", "anna", "leon", "mia", "finn", "lena", "jonas", "lea", "paul", "hannah",
           "felix", "sophie", "maximilian", "marie", "elias", "emilia", "juergen", "katrin", "tobias", "julia"),
    "fr": ("louis", "camille", "gabriel", "lea", "raphael", "manon", "arthur", "chloe", "jules", "ines",
           "hugo", "jade", "adam", "louise", "theo", "alice", "nathan", "zoe", "mathis", "clemence"),
    "es": ("hugo", "lucia", "mateo", "sofia", "martin", "maria", "pablo", "paula", "alejandro", "valeria",
           "daniel", "carmen", "alvaro", "elena", "diego", "laura", "javier", "marta", "sergio", "irene"),
    "ja": ("haruto", "yui", "sota", "hina", "yuto", "aoi", "riku", "sakura", "ren", "mei",
           "kaito", "yuna", "takumi", "rin", "daiki", "miyu", "kenta", "ayaka", "shota", "nanami"),
}
LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "walker", "wright",
           "thompson", "evans", "roberts", "green", "hall", "wood", "clarke", "turner", "hill", "baker"),
    "de": ("mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker", "schulz", "hoffmann",
           "koch", "richter", "klein", "wolf", "schroeder", "neumann", "schwarz", "zimmermann", "braun", "krueger"),
    "fr": ("martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy", "moreau",
           "simon", "laurent", "lefebvre", "michel", "garcia", "david", "bertrand", "roux", "vincent", "fournier"),
    "es": ("garcia", "rodriguez", "gonzalez", "fernandez", "lopez", "martinez", "sanchez", "perez", "gomez", "martin",
           "jimenez", "ruiz", "hernandez", "diaz", "moreno", "alvarez", "munoz", "romero", "alonso", "navarro"),
    "ja": ("sato", "suzuki", "takahashi", "tanaka", "watanabe", "ito", "yamamoto", "nakamura", "kobayashi", "kato",
           "yoshida", "yamada", "sasaki", "yamaguchi", "matsumoto", "inoue", "kimura", "hayashi", "shimizu", "mori"),
}
# Reserved by RFC 2606: seeded addresses can never reach a real mailbox.
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
