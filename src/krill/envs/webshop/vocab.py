"""Product-type vocabulary of the generated WebShop catalogue (data only, no logic).

The real WebShop scraped 1.18M Amazon products under five search categories (beauty, food, fashion,
furniture, electronics); SkillRL's official WebShop bank files skills under apparel, footwear,
home_decor, electronics, accessories, beauty_health and other. Each product type below names its
krill category, the Amazon-style category path (`a › b › c`, compared by `get_type_reward`), the
search query it was "scraped" under (WebShop's `query` field), its attribute pool (WebShop's
`Attributes`: short phrases such as "machine wash"), and its option groups (`customization_options`,
lowercased as WebShop's loader does).
"""

from __future__ import annotations

SIZES_APPAREL = ["x-small", "small", "medium", "large", "x-large", "xx-large", "3x-large"]
SIZES_SHOES = ["6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13"]
SIZES_BED = ["twin", "full", "queen", "king", "california king"]
COLORS = [
    "black", "white", "navy blue", "heather grey", "red", "burgundy", "olive green", "khaki", "pink",
    "royal blue", "beige", "brown", "charcoal", "purple", "yellow", "teal", "coral", "ivory", "silver",
    "gold", "rose gold", "light blue", "dark green", "orange", "lavender", "mint", "camel", "wine",
]  # fmt: skip
PACKS = ["pack of 1", "pack of 2", "pack of 3", "pack of 4", "pack of 6", "pack of 12"]

BRANDS = {
    "apparel": ["Hanes", "Gildan", "Levis", "Champion", "Columbia", "Carhartt", "Amazon Essentials", "Zonon", "Tagoo"],
    "footwear": ["Skechers", "Crocs", "Clarks", "Brooks", "Merrell", "Vionic", "Dream Pairs", "Teva"],
    "home_decor": ["Yankee", "Umbra", "nuLOOM", "Deconovo", "Nicetown", "Bedsure", "Utopia", "Lumiere", "Kasla"],
    "electronics": ["Anker", "Belkin", "JBL", "Logitech", "Ugreen", "Sony", "Aukey", "Soundcore", "Wyze"],
    "accessories": ["Fossil", "Ray-Ban", "Herschel", "Vinmall", "Timex", "Kate Spade", "Buffalo", "Mkono"],
    "beauty_health": ["Neutrogena", "CeraVe", "Olay", "Maybelline", "Revlon", "Burts Bees", "Oral-B", "Real Techniques"],
    "other": ["Lavazza", "Kind", "Purina", "Kong", "Gaiam", "Moleskine", "Twinings", "Optimum Nutrition", "Blue Buffalo"],
}  # fmt: skip

# "other" mixes grocery, pet, sports and office goods: brands by query keep "Purina" off snack bars.
BRANDS_BY_QUERY = {
    "coffee": ["Lavazza", "Peets", "Death Wish", "Kicking Horse"],
    "snack bars": ["Kind", "RXBAR", "Quest", "Clif"],
    "herbal tea": ["Twinings", "Yogi", "Traditional Medicinals", "Celestial"],
    "dog food": ["Purina", "Blue Buffalo", "Wellness", "Iams"],
    "cat toy": ["Kong", "Petstages", "SmartyKat", "Frisco"],
    "yoga mat": ["Gaiam", "Manduka", "BalanceFrom", "Amazon Basics"],
    "notebook": ["Moleskine", "Five Star", "Mead", "Rocketbook"],
    "protein powder": ["Optimum Nutrition", "Dymatize", "Isopure", "Orgain"],
}
# Kept upper case when a title is capitalised ("USB Charging Port", not "Usb Charging Port").
ACRONYMS = frozenset(
    "usb hdmi led uv spf rfid hd gmo pd bcaa ipx7 4k hdr 8k 14k tpe dpi 1080p 60w 20w 48gbps usda".split()
)

# Words used as modifiers in titles; `reward.title_nouns` treats them as non-nouns (spaCy would tag
# most of them ADJ), so the type score compares what a product *is*, not how it is described.
TITLE_ADJECTIVES = [
    "soft", "lightweight", "comfortable", "classic", "casual", "premium", "durable", "breathable",
    "slim", "fit", "stretch", "warm", "cozy", "modern", "vintage", "elegant", "portable", "wireless",
    "fast", "heavy", "duty", "waterproof", "organic", "natural", "gentle", "daily", "luxury", "mini",
    "compact", "adjustable", "quick", "dry", "non", "slip", "anti", "extra", "large", "small", "new",
    "original", "ultra", "thin", "high", "low", "long", "short", "sleeve", "lasting", "free", "best",
    "mens", "womens", "unisex", "kids", "men's", "women's", "pro", "plus", "super", "everyday",
]  # fmt: skip
TITLE_ADJECTIVES += ["rustic", "sturdy", "travel", "smart", "fresh", "pure", "gourmet", "healthy", "stylish"]

# Title modifiers that suit each category (all are in TITLE_ADJECTIVES).
MODIFIERS = {
    "apparel": ["soft", "lightweight", "comfortable", "classic", "casual", "premium", "breathable", "slim", "warm", "cozy", "stylish"],
    "footwear": ["comfortable", "lightweight", "breathable", "casual", "classic", "durable", "waterproof", "stylish", "sturdy"],
    "home_decor": ["modern", "vintage", "elegant", "cozy", "premium", "rustic", "luxury", "soft", "stylish"],
    "electronics": ["portable", "wireless", "fast", "compact", "premium", "ultra", "pro", "mini", "smart", "durable"],
    "accessories": ["classic", "vintage", "elegant", "slim", "premium", "durable", "casual", "lightweight", "travel", "stylish"],
    "beauty_health": ["gentle", "natural", "organic", "daily", "luxury", "premium", "pure", "travel", "pro"],
    "other": ["organic", "natural", "premium", "daily", "classic", "durable", "fresh", "gourmet", "healthy", "sturdy"],
}  # fmt: skip

A = "apparel"
F = "footwear"
H = "home_decor"
E = "electronics"
X = "accessories"
B = "beauty_health"
O = "other"  # noqa: E741 - one letter keeps the table readable

# name, category, title noun phrase, query, category path, attributes, option groups, price range
PRODUCT_TYPES: list[dict] = [
    # ---- apparel
    dict(cat=A, noun="Crew Neck T-Shirt", query="t-shirt", path="Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts",
         attrs=["cotton", "machine wash", "short sleeve", "classic fit", "tagless", "moisture wicking", "relaxed fit", "polyester blend"],
         opts={"color": COLORS, "size": SIZES_APPAREL}, price=(8, 35)),
    dict(cat=A, noun="Pullover Hoodie", query="hoodie", path="Clothing, Shoes & Jewelry › Men › Clothing › Active › Hoodies",
         attrs=["fleece lined", "machine wash", "long sleeve", "drawstring closure", "kangaroo pocket", "cotton", "relaxed fit"],
         opts={"color": COLORS, "size": SIZES_APPAREL}, price=(20, 60)),
    dict(cat=A, noun="Skinny Jeans", query="jeans", path="Clothing, Shoes & Jewelry › Women › Clothing › Jeans",
         attrs=["high waist", "stretch denim", "button closure", "machine wash", "slim fit", "butt lifting", "tummy control"],
         opts={"color": ["light blue", "dark blue wash", "black", "grey", "white"], "size": ["24", "26", "28", "30", "32", "34", "36"]},
         price=(20, 70)),
    dict(cat=A, noun="Maxi Dress", query="dress", path="Clothing, Shoes & Jewelry › Women › Clothing › Dresses › Casual",
         attrs=["floral print", "v neck", "short sleeve", "elastic waist", "polyester spandex", "hand wash", "flowy hem"],
         opts={"color": COLORS, "size": SIZES_APPAREL}, price=(18, 55)),
    dict(cat=A, noun="Yoga Leggings", query="leggings", path="Clothing, Shoes & Jewelry › Women › Clothing › Active › Leggings",
         attrs=["high waist", "tummy control", "four way stretch", "squat proof", "moisture wicking", "side pocket", "machine wash"],
         opts={"color": COLORS, "size": SIZES_APPAREL}, price=(12, 45)),
    dict(cat=A, noun="Pajama Set", query="pajama set", path="Clothing, Shoes & Jewelry › Women › Clothing › Lingerie, Sleep & Lounge › Sleep Sets",
         attrs=["button down", "long sleeve", "soft fabric", "elastic waist", "machine wash", "satin", "two piece"],
         opts={"color": COLORS, "size": SIZES_APPAREL}, price=(18, 50)),
    dict(cat=A, noun="Cargo Shorts", query="shorts", path="Clothing, Shoes & Jewelry › Men › Clothing › Shorts",
         attrs=["multi pocket", "elastic waist", "quick drying", "cotton twill", "relaxed fit", "machine wash", "belt loops"],
         opts={"color": ["khaki", "olive green", "black", "navy blue", "grey", "tan"], "size": ["30", "32", "34", "36", "38", "40", "42"]},
         price=(15, 45)),
    dict(cat=A, noun="Cardigan Sweater", query="sweater", path="Clothing, Shoes & Jewelry › Women › Clothing › Sweaters › Cardigans",
         attrs=["open front", "long sleeve", "knit fabric", "button closure", "hand wash", "chunky knit", "acrylic"],
         opts={"color": COLORS, "size": SIZES_APPAREL}, price=(20, 60)),
    # ---- footwear
    dict(cat=F, noun="Running Shoes", query="running shoes", path="Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running",
         attrs=["rubber sole", "lace up", "mesh upper", "memory foam", "non slip", "arch support", "lightweight"],
         opts={"color": COLORS, "size": SIZES_SHOES}, price=(30, 120)),
    dict(cat=F, noun="Slip On Sneakers", query="sneakers", path="Clothing, Shoes & Jewelry › Women › Shoes › Fashion Sneakers",
         attrs=["slip on", "canvas upper", "rubber sole", "memory foam", "breathable mesh", "non slip", "round toe"],
         opts={"color": COLORS, "size": SIZES_SHOES}, price=(25, 80)),
    dict(cat=F, noun="Ankle Boots", query="boots", path="Clothing, Shoes & Jewelry › Women › Shoes › Boots › Ankle & Bootie",
         attrs=["side zipper", "block heel", "faux leather", "round toe", "rubber sole", "water resistant", "pointed toe"],
         opts={"color": ["black", "brown", "tan", "grey", "burgundy", "beige"], "size": SIZES_SHOES}, price=(35, 110)),
    dict(cat=F, noun="Sport Sandals", query="sandals", path="Clothing, Shoes & Jewelry › Men › Shoes › Sandals",
         attrs=["open toe", "arch support", "adjustable strap", "quick drying", "rubber sole", "ankle strap", "cushioned footbed"],
         opts={"color": COLORS, "size": SIZES_SHOES}, price=(18, 70)),
    dict(cat=F, noun="House Slippers", query="slippers", path="Clothing, Shoes & Jewelry › Women › Shoes › Slippers",
         attrs=["memory foam", "faux fur", "anti skid sole", "closed toe", "machine washable", "plush lining", "indoor outdoor"],
         opts={"color": COLORS, "size": ["5-6", "7-8", "9-10", "11-12"]}, price=(12, 40)),
    dict(cat=F, noun="Hiking Boots", query="hiking boots", path="Clothing, Shoes & Jewelry › Men › Shoes › Outdoor › Hiking & Trekking",
         attrs=["waterproof", "ankle support", "lace up", "rubber sole", "leather upper", "slip resistant", "steel toe"],
         opts={"color": ["brown", "black", "grey", "khaki", "olive green"], "size": SIZES_SHOES}, price=(45, 150)),
    dict(cat=F, noun="Penny Loafers", query="loafers", path="Clothing, Shoes & Jewelry › Men › Shoes › Loafers & Slip-Ons",
         attrs=["genuine leather", "slip on", "rubber sole", "round toe", "cushioned insole", "moc toe", "lightweight"],
         opts={"color": ["black", "brown", "tan", "burgundy", "navy blue"], "size": SIZES_SHOES}, price=(35, 120)),
    # ---- home_decor
    dict(cat=H, noun="Throw Pillow Covers", query="throw pillow covers", path="Home & Kitchen › Bedding › Decorative Pillows, Inserts & Covers › Throw Pillow Covers",
         attrs=["hidden zipper", "velvet", "machine washable", "double sided", "living room", "farmhouse style", "linen"],
         opts={"color": COLORS, "size": ["16x16 inch", "18x18 inch", "20x20 inch", "24x24 inch"]}, price=(9, 30)),
    dict(cat=H, noun="Blackout Curtains", query="curtains", path="Home & Kitchen › Home Décor › Window Treatments › Curtains & Drapes › Panels",
         attrs=["thermal insulated", "grommet top", "room darkening", "noise reducing", "machine washable", "living room", "bedroom"],
         opts={"color": COLORS, "size": ["42x63 inch", "42x84 inch", "52x63 inch", "52x84 inch", "52x95 inch"]}, price=(15, 60)),
    dict(cat=H, noun="Area Rug", query="area rug", path="Home & Kitchen › Home Décor › Area Rugs, Runners & Pads › Area Rugs",
         attrs=["non slip", "machine washable", "low pile", "living room", "stain resistant", "boho style", "easy clean"],
         opts={"color": ["grey", "blue", "beige", "multicolor", "ivory", "navy blue", "red"], "size": ["2x3 ft", "3x5 ft", "4x6 ft", "5x7 ft", "8x10 ft"]},
         price=(25, 160)),
    dict(cat=H, noun="Canvas Wall Art", query="wall art", path="Home & Kitchen › Home Décor › Wall Art › Posters & Prints",
         attrs=["ready to hang", "living room", "wood frame", "high definition", "bedroom", "modern art", "waterproof canvas"],
         opts={"color": ["abstract", "landscape", "botanical", "ocean", "mountain", "city skyline"], "size": ["12x16 inch", "16x24 inch", "24x36 inch"]},
         price=(20, 90)),
    dict(cat=H, noun="Bed Sheet Set", query="bed sheets", path="Home & Kitchen › Bedding › Sheets & Pillowcases › Sheet & Pillowcase Sets",
         attrs=["deep pocket", "microfiber", "wrinkle free", "machine wash", "egyptian cotton", "breathable", "fade resistant"],
         opts={"color": COLORS, "size": SIZES_BED}, price=(20, 80)),
    dict(cat=H, noun="Bedside Table Lamp", query="table lamp", path="Home & Kitchen › Lighting & Ceiling Fans › Lamps & Shades › Table Lamps",
         attrs=["usb charging port", "touch control", "dimmable", "fabric shade", "bedroom", "living room", "bulb included"],
         opts={"color": ["black", "white", "gold", "silver", "brown", "grey"], "style": ["set of 1", "set of 2"]}, price=(20, 80)),
    dict(cat=H, noun="Scented Candle", query="candles", path="Home & Kitchen › Home Décor › Candles & Holders › Candles › Jar Candles",
         attrs=["soy wax", "long lasting", "natural ingredients", "lead free wick", "glass jar", "gift set", "aromatherapy"],
         opts={"scent": ["lavender", "vanilla", "sandalwood", "eucalyptus", "fresh linen", "cinnamon", "sea salt"], "size": ["8 oz", "12 oz", "16 oz"]},
         price=(10, 40)),
    dict(cat=H, noun="Picture Frame", query="picture frame", path="Home & Kitchen › Home Décor › Photo Albums, Frames & Accessories › Picture Frames",
         attrs=["wall mounting", "tabletop display", "solid wood", "glass front", "mat included", "easy install", "living room"],
         opts={"color": ["black", "white", "gold", "walnut", "silver", "natural wood"], "size": ["4x6 inch", "5x7 inch", "8x10 inch", "11x14 inch"]},
         price=(8, 40)),
    # ---- electronics
    dict(cat=E, noun="Bluetooth Headphones", query="bluetooth headphones", path="Electronics › Headphones, Earbuds & Accessories › Headphones › Over-Ear",
         attrs=["noise cancelling", "long battery life", "hands free", "over ear", "foldable design", "built in microphone", "hi fi sound"],
         opts={"color": ["black", "white", "silver", "blue", "rose gold"]}, price=(25, 150)),
    dict(cat=E, noun="Wireless Earbuds", query="wireless earbuds", path="Electronics › Headphones, Earbuds & Accessories › Headphones › Earbud Headphones",
         attrs=["charging case", "water resistant", "touch control", "noise cancelling", "hands free", "long battery life", "usb c"],
         opts={"color": ["black", "white", "navy blue", "pink", "green"]}, price=(20, 130)),
    dict(cat=E, noun="USB C Charging Cable", query="usb c cable", path="Electronics › Computers & Accessories › Cables › USB Cables",
         attrs=["fast charging", "braided nylon", "data transfer", "usb c", "durable", "high speed", "aluminum connector"],
         opts={"color": ["black", "white", "grey", "red"], "size": ["3 ft", "6 ft", "10 ft"], "item package quantity": PACKS[:4]},
         price=(6, 25)),
    dict(cat=E, noun="Portable Power Bank", query="power bank", path="Electronics › Cell Phones & Accessories › Chargers & Power Adapters › Portable Power Banks",
         attrs=["fast charging", "usb c", "high capacity", "led display", "dual output", "compact design", "airline approved"],
         opts={"color": ["black", "white", "blue"], "capacity": ["10000mah", "20000mah", "26800mah"]}, price=(18, 60)),
    dict(cat=E, noun="Bluetooth Speaker", query="bluetooth speaker", path="Electronics › Portable Audio & Video › Portable Speakers & Docks › Portable Bluetooth Speakers",
         attrs=["waterproof", "stereo sound", "long battery life", "built in microphone", "outdoor", "deep bass", "hands free"],
         opts={"color": ["black", "blue", "red", "grey", "teal"]}, price=(20, 120)),
    dict(cat=E, noun="Wireless Mouse", query="wireless mouse", path="Electronics › Computers & Accessories › Computer Accessories & Peripherals › Keyboards, Mice & Accessories › Mice",
         attrs=["ergonomic design", "silent click", "usb receiver", "rechargeable", "adjustable dpi", "plug and play", "long battery life"],
         opts={"color": ["black", "white", "grey", "pink", "blue"]}, price=(10, 45)),
    dict(cat=E, noun="Security Camera", query="security camera", path="Electronics › Camera & Photo › Video Surveillance › Surveillance Cameras › Dome Cameras",
         attrs=["night vision", "motion detection", "two way audio", "1080p hd", "cloud storage", "easy installation", "weatherproof"],
         opts={"size": ["1 camera", "2 cameras", "4 cameras"], "style": ["indoor", "outdoor"]}, price=(25, 140)),
    dict(cat=E, noun="HDMI Cable", query="hdmi cable", path="Electronics › Television & Video › Accessories › Cables › HDMI Cables",
         attrs=["high speed", "4k hdr", "gold plated", "braided cord", "ethernet", "plug and play", "durable"],
         opts={"size": ["3 ft", "6 ft", "10 ft", "15 ft"], "item package quantity": PACKS[:3]}, price=(6, 25)),
    # ---- accessories
    dict(cat=X, noun="Bifold Wallet", query="wallet", path="Clothing, Shoes & Jewelry › Men › Accessories › Wallets, Card Cases & Money Organizers › Wallets",
         attrs=["genuine leather", "rfid blocking", "slim design", "card slots", "id window", "gift box", "coin pocket"],
         opts={"color": ["black", "brown", "tan", "navy blue", "grey"]}, price=(12, 50)),
    dict(cat=X, noun="Laptop Backpack", query="backpack", path="Clothing, Shoes & Jewelry › Luggage & Travel Gear › Backpacks › Laptop Backpacks",
         attrs=["water resistant", "usb charging port", "anti theft", "padded compartment", "large capacity", "travel", "lightweight"],
         opts={"color": ["black", "grey", "navy blue", "pink", "olive green"]}, price=(22, 80)),
    dict(cat=X, noun="Polarized Sunglasses", query="sunglasses", path="Clothing, Shoes & Jewelry › Men › Accessories › Sunglasses & Eyewear Accessories › Sunglasses",
         attrs=["uv protection", "polarized lens", "metal frame", "lightweight", "case included", "scratch resistant", "oversized"],
         opts={"color": ["black", "tortoise", "gold", "silver", "brown", "blue mirror"]}, price=(10, 60)),
    dict(cat=X, noun="Watch Band", query="watch band", path="Cell Phones & Accessories › Accessories › Smartwatch Accessories › Smartwatch Bands",
         attrs=["quick release", "silicone", "adjustable", "sweat resistant", "stainless steel", "replacement band", "easy install"],
         opts={"color": COLORS, "size": ["38mm", "40mm", "42mm", "44mm"]}, price=(6, 30)),
    dict(cat=X, noun="Baseball Cap", query="baseball cap", path="Clothing, Shoes & Jewelry › Men › Accessories › Hats & Caps › Baseball Caps",
         attrs=["adjustable strap", "cotton", "embroidered logo", "sun protection", "breathable", "curved brim", "washable"],
         opts={"color": COLORS}, price=(8, 30)),
    dict(cat=X, noun="Leather Belt", query="belt", path="Clothing, Shoes & Jewelry › Men › Accessories › Belts",
         attrs=["genuine leather", "alloy buckle", "adjustable", "gift box", "casual", "dress", "reversible"],
         opts={"color": ["black", "brown", "tan", "burgundy"], "size": ["32", "34", "36", "38", "40", "42"]}, price=(10, 40)),
    dict(cat=X, noun="Canvas Tote Bag", query="tote bag", path="Clothing, Shoes & Jewelry › Women › Handbags & Wallets › Totes",
         attrs=["zipper closure", "inner pocket", "large capacity", "reusable", "cotton canvas", "shoulder strap", "machine washable"],
         opts={"color": COLORS}, price=(10, 40)),
    dict(cat=X, noun="Pendant Necklace", query="necklace", path="Clothing, Shoes & Jewelry › Women › Jewelry › Necklaces › Pendants",
         attrs=["sterling silver", "hypoallergenic", "gift box", "adjustable chain", "14k gold plated", "nickel free", "dainty"],
         opts={"color": ["silver", "gold", "rose gold"], "size": ["16 inch", "18 inch", "20 inch"]}, price=(12, 70)),
    # ---- beauty_health
    dict(cat=B, noun="Moisturizing Shampoo", query="shampoo", path="Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos",
         attrs=["sulfate free", "paraben free", "natural ingredients", "dry hair", "tea tree", "argan oil", "color safe"],
         opts={"size": ["8 fl oz", "12 fl oz", "16 fl oz", "33.8 fl oz"], "item package quantity": PACKS[:3]}, price=(6, 35)),
    dict(cat=B, noun="Face Moisturizer", query="face moisturizer", path="Beauty & Personal Care › Skin Care › Face › Creams & Moisturizers › Face Moisturizers",
         attrs=["hyaluronic acid", "fragrance free", "sensitive skin", "non greasy", "dermatologist tested", "spf 30", "cruelty free"],
         opts={"size": ["1.7 oz", "2.5 oz", "3.4 oz"]}, price=(8, 45)),
    dict(cat=B, noun="Matte Lipstick", query="lipstick", path="Beauty & Personal Care › Makeup › Lips › Lipstick",
         attrs=["long lasting", "highly pigmented", "cruelty free", "moisturizing", "waterproof", "vegan", "smudge proof"],
         opts={"color": ["red", "nude", "pink", "berry", "coral", "wine", "mauve"], "item package quantity": PACKS[:3]}, price=(5, 25)),
    dict(cat=B, noun="Gel Nail Polish", query="nail polish", path="Beauty & Personal Care › Foot, Hand & Nail Care › Nail Art & Polish › Nail Polish",
         attrs=["long lasting", "quick dry", "high gloss", "non toxic", "soak off", "chip resistant", "salon quality"],
         opts={"color": COLORS, "item package quantity": PACKS[:4]}, price=(5, 25)),
    dict(cat=B, noun="Makeup Brush Set", query="makeup brushes", path="Beauty & Personal Care › Tools & Accessories › Makeup Brushes & Tools › Brush Sets",
         attrs=["synthetic bristles", "cruelty free", "travel case", "easy clean", "soft bristles", "wooden handle", "professional"],
         opts={"color": ["black", "pink", "rose gold", "white", "purple"], "size": ["10 pieces", "14 pieces", "18 pieces"]}, price=(8, 35)),
    dict(cat=B, noun="Vitamin C Serum", query="vitamin c serum", path="Beauty & Personal Care › Skin Care › Face › Serums",
         attrs=["anti aging", "hyaluronic acid", "dark spots", "natural ingredients", "paraben free", "fine lines", "vegan"],
         opts={"size": ["1 fl oz", "2 fl oz"], "item package quantity": PACKS[:2]}, price=(10, 40)),
    dict(cat=B, noun="Electric Toothbrush", query="electric toothbrush", path="Beauty & Personal Care › Oral Care › Toothbrushes & Accessories › Power Toothbrushes",
         attrs=["rechargeable", "smart timer", "sensitive teeth", "travel case", "long battery life", "waterproof", "replacement heads"],
         opts={"color": ["black", "white", "pink", "blue", "green"]}, price=(20, 90)),
    dict(cat=B, noun="Hair Extensions", query="hair extensions", path="Beauty & Personal Care › Hair Care › Hair Extensions, Wigs & Accessories › Hair Extensions",
         attrs=["human hair", "clip in", "natural looking", "straight hair", "heat resistant", "easy to apply", "tangle free"],
         opts={"color": ["black", "dark brown", "light brown", "blonde", "auburn"], "size": ["14 inch", "18 inch", "22 inch"]}, price=(25, 120)),
    # ---- other (grocery, pet, sports, office)
    dict(cat=O, noun="Whole Bean Coffee", query="coffee", path="Grocery & Gourmet Food › Beverages › Coffee, Tea & Cocoa › Coffee › Whole Coffee Beans",
         attrs=["medium roast", "single origin", "fair trade", "usda organic", "non gmo", "freshly roasted", "arabica"],
         opts={"flavor name": ["original blend", "french roast", "hazelnut", "espresso roast", "breakfast blend"], "size": ["12 ounce", "2 pound", "5 pound"]},
         price=(8, 45)),
    dict(cat=O, noun="Protein Snack Bars", query="snack bars", path="Grocery & Gourmet Food › Snacks & Sweets › Snack Bars › Protein Bars",
         attrs=["gluten free", "low sugar", "high protein", "non gmo", "keto friendly", "plant based", "individually wrapped"],
         opts={"flavor name": ["peanut butter", "dark chocolate", "almond", "cookie dough", "berry"], "size": ["12 count", "24 count"]},
         price=(10, 40)),
    dict(cat=O, noun="Herbal Tea Bags", query="herbal tea", path="Grocery & Gourmet Food › Beverages › Coffee, Tea & Cocoa › Tea › Herbal",
         attrs=["caffeine free", "usda organic", "non gmo", "individually wrapped", "kosher", "gluten free", "natural ingredients"],
         opts={"flavor name": ["chamomile", "peppermint", "ginger", "hibiscus", "rooibos"], "item package quantity": PACKS[:4]},
         price=(5, 30)),
    dict(cat=O, noun="Dry Dog Food", query="dog food", path="Pet Supplies › Dogs › Food › Dry",
         attrs=["grain free", "real meat", "high protein", "natural ingredients", "small breed", "no artificial flavors", "adult dog"],
         opts={"flavor name": ["chicken", "beef", "salmon", "lamb", "turkey"], "size": ["4 pound", "15 pound", "30 pound"]}, price=(12, 70)),
    dict(cat=O, noun="Interactive Cat Toy", query="cat toy", path="Pet Supplies › Cats › Toys › Teasers",
         attrs=["indoor cats", "interactive", "catnip", "durable", "feather", "battery operated", "non toxic"],
         opts={"color": ["blue", "pink", "green", "multicolor"], "item package quantity": PACKS[:3]}, price=(6, 30)),
    dict(cat=O, noun="Yoga Mat", query="yoga mat", path="Sports & Outdoors › Exercise & Fitness › Yoga › Mats",
         attrs=["non slip", "extra thick", "carrying strap", "eco friendly", "tpe material", "easy clean", "high density"],
         opts={"color": ["black", "purple", "blue", "pink", "grey", "teal"], "size": ["1/4 inch", "1/3 inch", "1/2 inch"]}, price=(15, 60)),
    dict(cat=O, noun="Spiral Notebook", query="notebook", path="Office Products › Office & School Supplies › Paper › Notebooks & Writing Pads › Wirebound Notebooks",
         attrs=["college ruled", "thick paper", "hardcover", "perforated pages", "pocket folder", "acid free", "lay flat"],
         opts={"color": ["black", "blue", "red", "green", "assorted"], "item package quantity": PACKS[:4]}, price=(5, 25)),
    dict(cat=O, noun="Whey Protein Powder", query="protein powder", path="Health & Household › Sports Nutrition › Protein › Whey",
         attrs=["gluten free", "low sugar", "muscle recovery", "non gmo", "grass fed", "keto friendly", "no artificial sweeteners"],
         opts={"flavor name": ["vanilla", "chocolate", "strawberry", "cookies and cream", "unflavored"], "size": ["1 pound", "2 pound", "5 pound"]},
         price=(20, 70)),
]  # fmt: skip

# Phrases that turn an attribute or a trait into marketing copy (descriptions and feature bullets).
FEATURE_TEMPLATES = [
    "{Attr}: designed with {attr} for everyday use",
    "{Attr} - a practical choice you will reach for again and again",
    "Made to last: {attr} keeps it looking and working like new",
    "{Attr} for comfort and convenience at home or on the go",
    "Customer favorite: {attr} that makes a real difference",
]
DESCRIPTION_OPENERS = [
    "Introducing the {brand} {noun}.",
    "Meet the {noun} from {brand}.",
    "The {brand} {noun} is here.",
    "Upgrade your routine with this {noun} by {brand}.",
]
DESCRIPTION_FILLERS = [
    "Every detail is checked before it ships.",
    "A thoughtful gift for family and friends.",
    "Backed by our satisfaction guarantee.",
    "Easy to care for and built for daily use.",
    "Our team tests each design for quality and fit.",
]

# More attributes per type (keyed by query): real products differ in more ways than seven, and a
# wider pool keeps a random product of the right type from matching the goal's attributes by luck.
EXTRA_ATTRS = {
    "t-shirt": ["crew neck", "pre shrunk", "ribbed collar", "athletic fit"],
    "hoodie": ["zip up", "ribbed cuffs", "heavyweight", "sherpa lined"],
    "jeans": ["distressed", "five pocket", "bootcut", "ankle length"],
    "dress": ["a line", "sleeveless", "wrap style", "knee length"],
    "leggings": ["buttery soft", "non see through", "full length", "seamless"],
    "pajama set": ["lounge wear", "modal fabric", "notch collar", "jogger pants"],
    "shorts": ["stretch fabric", "zipper fly", "knee length", "ripstop"],
    "sweater": ["oversized", "v neck", "cable knit", "wool blend"],
    "running shoes": ["shock absorbing", "wide toe box", "reflective details", "breathable knit"],
    "sneakers": ["platform sole", "low top", "padded collar", "vegan leather"],
    "boots": ["chelsea style", "pull on", "padded insole", "suede"],
    "sandals": ["hook and loop", "water shoes", "contoured footbed", "toe loop"],
    "slippers": ["open toe", "fuzzy", "hard sole", "cross band"],
    "hiking boots": ["breathable lining", "lug sole", "mid cut", "padded collar"],
    "loafers": ["driving style", "tassel", "breathable lining", "formal"],
    "throw pillow covers": ["cotton linen", "geometric pattern", "set of 4", "invisible zipper"],
    "curtains": ["rod pocket", "sheer", "energy saving", "fade resistant"],
    "area rug": ["shag", "kids room", "indoor outdoor", "distressed design"],
    "wall art": ["framed", "abstract", "set of 3", "gallery wrapped"],
    "bed sheets": ["cooling", "bamboo", "4 piece", "hotel quality"],
    "table lamp": ["3 way dimmable", "nightstand", "rustic", "ceramic base"],
    "candles": ["three wick", "hand poured", "clean burning", "tin container"],
    "picture frame": ["collage", "rustic wood", "plexiglass", "hanging hardware"],
    "bluetooth headphones": ["memory foam ear cushions", "wired mode", "deep bass", "low latency"],
    "wireless earbuds": ["ear hooks", "sweat proof", "stereo sound", "wireless charging"],
    "usb c cable": ["60w", "right angle", "tangle free", "usb 2.0"],
    "power bank": ["magnetic", "wireless charging", "pd 20w", "slim"],
    "bluetooth speaker": ["party lights", "ipx7", "portable", "pairing"],
    "wireless mouse": ["bluetooth", "side buttons", "travel", "optical sensor"],
    "security camera": ["pan tilt", "alexa compatible", "battery powered", "spotlight"],
    "hdmi cable": ["8k", "48gbps", "high speed", "flexible"],
    "wallet": ["minimalist", "money clip", "front pocket", "zipper"],
    "backpack": ["college", "luggage strap", "hiking", "laptop sleeve"],
    "sunglasses": ["cat eye", "square frame", "driving", "retro"],
    "watch band": ["nylon", "magnetic clasp", "breathable", "sport loop"],
    "baseball cap": ["trucker", "mesh back", "distressed", "unstructured"],
    "belt": ["ratchet", "no holes", "automatic buckle", "big and tall"],
    "tote bag": ["crossbody", "beach", "foldable", "vegan leather"],
    "necklace": ["birthstone", "layered", "initial", "heart pendant"],
    "shampoo": ["volumizing", "anti dandruff", "curly hair", "keratin"],
    "face moisturizer": ["oil free", "night cream", "ceramides", "retinol"],
    "lipstick": ["satin finish", "liquid", "transfer proof", "lip liner"],
    "nail polish": ["glitter", "uv led", "base coat", "top coat"],
    "makeup brushes": ["kabuki", "blending", "eyeshadow", "foundation brush"],
    "vitamin c serum": ["brightening", "niacinamide", "vitamin e", "dropper bottle"],
    "electric toothbrush": ["sonic", "whitening", "pressure sensor", "5 modes"],
    "hair extensions": ["wavy", "tape in", "remy hair", "double weft"],
    "coffee": ["dark roast", "kosher", "low acid", "rainforest alliance"],
    "snack bars": ["vegan", "dairy free", "whole grains", "no added sugar"],
    "herbal tea": ["decaf", "loose leaf", "immune support", "sleep aid"],
    "dog food": ["puppy", "weight management", "sensitive stomach", "omega 3"],
    "cat toy": ["motion activated", "rechargeable", "ball track", "self play"],
    "yoga mat": ["alignment lines", "reversible", "sweat resistant", "travel"],
    "notebook": ["dot grid", "wide ruled", "spiral bound", "100 sheets"],
    "protein powder": ["25g protein", "bcaa", "lactose free", "easy mixing"],
}
for _t in PRODUCT_TYPES:
    _t["attrs"] = list(dict.fromkeys(_t["attrs"] + EXTRA_ATTRS[_t["query"]]))
