"""Generator-side reference tables: ethnic groups, name pools, name variants, places and noise codes.

Kept here, not in conf/names, so the generator does not depend on the ingest helper's lists:
a linker that only knows its own nickname file must still meet the variants made here.
Pools list names most common first; the generator draws them with Zipf-like weights.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EthnicSubgroup:
    code: str        # NHS ethnic category code
    group: str       # one of the five groups QA reports on
    label: str       # free-text form social care sometimes records
    share: float     # share of households (roughly England and Wales, Census 2021)
    pool: str        # name pool


# Chinese (R) is reported under Asian, as in the 2021 Census groups.
SUBGROUPS: tuple[EthnicSubgroup, ...] = (
    EthnicSubgroup("A", "White", "White British", 0.720, "british"),
    EthnicSubgroup("B", "White", "White Irish", 0.010, "irish"),
    EthnicSubgroup("C", "White", "Any other White background", 0.060, "polish"),
    EthnicSubgroup("D", "Mixed", "White and Black Caribbean", 0.009, "caribbean"),
    EthnicSubgroup("E", "Mixed", "White and Black African", 0.005, "british"),
    EthnicSubgroup("F", "Mixed", "White and Asian", 0.008, "british"),
    EthnicSubgroup("G", "Mixed", "Any other mixed background", 0.008, "british"),
    EthnicSubgroup("H", "Asian", "Indian", 0.031, "indian"),
    EthnicSubgroup("J", "Asian", "Pakistani", 0.027, "pakistani"),
    EthnicSubgroup("K", "Asian", "Bangladeshi", 0.011, "bangladeshi"),
    EthnicSubgroup("L", "Asian", "Any other Asian background", 0.016, "indian"),
    EthnicSubgroup("R", "Asian", "Chinese", 0.007, "chinese"),
    EthnicSubgroup("M", "Black", "Black Caribbean", 0.011, "caribbean"),
    EthnicSubgroup("N", "Black", "Black African", 0.025, "african"),
    EthnicSubgroup("P", "Black", "Any other Black background", 0.005, "african"),
    EthnicSubgroup("S", "Other", "Any other ethnic group", 0.020, "arab"),
)
GROUPS = ("White", "Mixed", "Asian", "Black", "Other")


@dataclass(frozen=True)
class NamePool:
    male: tuple[str, ...]
    female: tuple[str, ...]
    surnames: tuple[str, ...]


POOLS: dict[str, NamePool] = {
    "british": NamePool(
        male=("Oliver", "James", "William", "Thomas", "George", "Jack", "Harry", "Daniel", "Michael", "David",
              "Robert", "Christopher", "Matthew", "Samuel", "Joseph", "Benjamin", "Alexander", "Richard",
              "Anthony", "Edward", "Nicholas", "Stephen", "Jonathan", "Paul", "Mark", "Andrew", "Peter", "John",
              "Charlie", "Leo", "Noah", "Arthur", "Jacob", "Ethan", "Lewis", "Ryan", "Callum", "Gareth"),
        female=("Olivia", "Amelia", "Emily", "Sophie", "Jessica", "Charlotte", "Elizabeth", "Catherine", "Sarah",
                "Rebecca", "Jennifer", "Susan", "Margaret", "Victoria", "Samantha", "Deborah", "Patricia",
                "Alexandra", "Abigail", "Katherine", "Zoë", "Chloë", "Renée", "Hannah", "Lucy", "Laura", "Emma",
                "Grace", "Ruby", "Isla", "Megan", "Rachel", "Helen", "Karen", "Joanne", "Nicola", "Amy"),
        surnames=("Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
                  "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
                  "Green", "Hall", "Lewis", "Harris", "Clarke", "Patterson", "Jackson", "Wood", "Turner", "Martin",
                  "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
                  "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price",
                  "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey",
                  "Collins", "Bell", "Shaw", "Murphy", "McDonald", "Atkinson", "Fletcher", "Whitehead")),
    "irish": NamePool(
        male=("Seán", "Patrick", "Conor", "Ciarán", "Declan", "Liam", "Aidan", "Eoin", "Michael", "Padraig"),
        female=("Siobhán", "Niamh", "Aoife", "Bridget", "Mary", "Sinéad", "Orla", "Róisín", "Ciara", "Mairead"),
        surnames=("Murphy", "O'Neill", "O'Brien", "Kelly", "Byrne", "O'Connor", "Ryan", "Walsh", "Doyle",
                  "McCarthy", "O'Sullivan", "Gallagher", "Kennedy", "Quinn", "D'Arcy")),
    "polish": NamePool(
        male=("Piotr", "Krzysztof", "Tomasz", "Łukasz", "Paweł", "Michał", "Jakub", "Wojciech", "Aleksander",
              "Marcin", "Andrei", "Ionuț"),
        female=("Anna", "Katarzyna", "Małgorzata", "Agnieszka", "Joanna", "Magdalena", "Zofia", "Ewa",
                "Monika", "Maria", "Ioana", "Elena"),
        surnames=("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
                  "Zieliński", "Szymański", "Woźniak", "Popescu", "Ionescu", "Kozłowski", "Jankowski")),
    "indian": NamePool(
        male=("Rajesh", "Sanjay", "Amit", "Deepak", "Harpreet", "Gurpreet", "Arjun", "Vikram", "Ravi", "Sunil",
              "Mohinder", "Anil", "Rohan", "Kiran"),
        female=("Priya", "Sunita", "Anjali", "Manpreet", "Pooja", "Neha", "Kavita", "Simran", "Anita", "Deepa",
                "Harjit", "Meera"),
        surnames=("Patel", "Singh", "Kaur", "Sharma", "Shah", "Gill", "Sandhu", "Kumar", "Mistry", "Chauhan",
                  "Parmar", "Joshi", "Mehta", "Desai", "D'Souza")),
    "pakistani": NamePool(
        male=("Mohammed", "Muhammad", "Ahmed", "Ali", "Hassan", "Imran", "Bilal", "Usman", "Zain", "Hamza",
              "Yusuf", "Abdul", "Omar", "Tariq"),
        female=("Aisha", "Fatima", "Ayesha", "Maryam", "Zainab", "Sana", "Amina", "Hira", "Nadia", "Saima",
                "Iqra", "Khadija"),
        surnames=("Khan", "Hussain", "Ahmed", "Ali", "Akhtar", "Iqbal", "Mahmood", "Malik", "Butt", "Rashid",
                  "Shah", "Bibi", "Raza", "Aslam")),
    "bangladeshi": NamePool(
        male=("Mohammed", "Abdul", "Mohammad", "Rahim", "Jamal", "Shahid", "Rafiq", "Kamal", "Yusuf", "Habib"),
        female=("Fatima", "Aisha", "Nasima", "Shirin", "Rukhsana", "Salma", "Taslima", "Jasmin", "Rina", "Roksana"),
        surnames=("Begum", "Rahman", "Uddin", "Miah", "Ahmed", "Islam", "Hossain", "Chowdhury", "Khatun", "Ali",
                  "Alom", "Haque")),
    "chinese": NamePool(
        male=("Wei", "Jun", "Hao", "Ming", "Jian", "Kai", "Lei", "Yong"),
        female=("Li", "Mei", "Xiu", "Ying", "Hui", "Lan", "Jing", "Yan"),
        surnames=("Zhang", "Chen", "Wang", "Li", "Liu", "Wu", "Huang", "Zhou", "Lin", "Xu", "Ng", "Cheung")),
    "caribbean": NamePool(
        male=("Marcus", "Leroy", "Winston", "Delroy", "Tyrone", "Jermaine", "Andre", "Devon", "Clive", "Errol"),
        female=("Claudette", "Marcia", "Jacqueline", "Simone", "Beverley", "Janelle", "Shanice", "Donna",
                "Paulette", "Tanisha"),
        surnames=("Campbell", "Brown", "Williams", "Francis", "Grant", "Thomas", "Reid", "Clarke", "Henry",
                  "Richards", "Bailey", "Forbes")),
    "african": NamePool(
        male=("Oluwaseun", "Chinedu", "Emmanuel", "Kwame", "Abdirahman", "Mohamud", "Tendai", "Samuel",
              "Ibrahim", "Olumide", "Kofi", "Yaw"),
        female=("Blessing", "Chioma", "Abena", "Fadumo", "Amina", "Ngozi", "Grace", "Faith", "Hodan", "Adaeze",
                "Esther", "Ayan"),
        surnames=("Okafor", "Adeyemi", "Mensah", "Mohamed", "Abdi", "Osei", "Nwosu", "Hassan", "Okonkwo",
                  "Asante", "Ali", "Adebayo", "Warsame", "Boateng")),
    "arab": NamePool(
        male=("Mohammed", "Ahmed", "Omar", "Khalid", "Youssef", "Karim", "Hassan", "Ali", "Ibrahim", "Samir"),
        female=("Fatima", "Mariam", "Layla", "Noor", "Huda", "Amal", "Rania", "Yasmin", "Salma", "Lina"),
        surnames=("Al-Hassan", "Abdullah", "Haddad", "Nasser", "Saleh", "Al-Rashid", "Mansour", "Khalil",
                  "El-Sayed", "Hamdan", "Aziz")),
}

# Canonical -> variants a source may hold instead: nicknames, short forms, spellings, transliterations.
FORENAME_VARIANTS: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"), "Catherine": ("Kate", "Cathy", "Katherine"), "Katherine": ("Kate", "Kathy"),
    "William": ("Bill", "Will", "Billy"), "Elizabeth": ("Liz", "Beth", "Lizzie"), "Margaret": ("Maggie", "Peggy"),
    "James": ("Jim", "Jamie"), "Thomas": ("Tom", "Tommy"), "Michael": ("Mike", "Mick"), "Christopher": ("Chris",),
    "Alexander": ("Alex", "Sandy"), "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Jonathan": ("Jon",),
    "Samuel": ("Sam",), "Joseph": ("Joe",), "Richard": ("Rick", "Dick"), "Anthony": ("Tony",),
    "Edward": ("Ed", "Ted", "Eddie"), "Charlotte": ("Lottie",), "Rebecca": ("Becky",), "Jennifer": ("Jenny",),
    "Susan": ("Sue",), "Deborah": ("Debbie", "Debra"), "Victoria": ("Vicky",), "Alexandra": ("Alex",),
    "Samantha": ("Sam",), "Patricia": ("Pat", "Trish"), "Benjamin": ("Ben",), "Nicholas": ("Nick",),
    "Stephen": ("Steve", "Steven"), "Jessica": ("Jess",), "Abigail": ("Abbie", "Abby"), "Olivia": ("Liv",),
    "Andrew": ("Andy",), "Peter": ("Pete",), "Joanne": ("Jo",), "Nicola": ("Nicky",), "Callum": ("Calum",),
    "Seán": ("Sean", "Shaun"), "Siobhán": ("Siobhan", "Shevaun"), "Niamh": ("Neve",), "Patrick": ("Paddy",),
    "Bridget": ("Bridie",), "Padraig": ("Patrick",), "Sinéad": ("Sinead",),
    "Katarzyna": ("Kasia", "Katherine"), "Małgorzata": ("Gosia", "Malgorzata"), "Aleksander": ("Olek", "Alexander"),
    "Wojciech": ("Wojtek",), "Piotr": ("Peter",), "Łukasz": ("Lukasz", "Luke"), "Paweł": ("Pawel", "Paul"),
    "Michał": ("Michal", "Michael"), "Jakub": ("Kuba", "Jacob"), "Krzysztof": ("Chris",),
    "Mohammed": ("Muhammad", "Mohamed", "Mohammad", "Muhammed"), "Muhammad": ("Mohammed", "Mohamed"),
    "Mohammad": ("Mohammed", "Muhammad"), "Ahmed": ("Ahmad",), "Aisha": ("Ayesha", "Aysha"),
    "Ayesha": ("Aisha",), "Fatima": ("Fatimah", "Fatema"), "Yusuf": ("Yousuf", "Yousef"),
    "Youssef": ("Yusuf", "Yousef"), "Abdul": ("Abdool",), "Omar": ("Umar",), "Khalid": ("Khaled",),
    "Maryam": ("Mariam",), "Mariam": ("Maryam", "Miriam"), "Layla": ("Leila", "Laila"), "Zainab": ("Zaynab",),
    "Hassan": ("Hasan",), "Usman": ("Osman",), "Khadija": ("Khadijah",), "Jasmin": ("Yasmin",),
    "Rajesh": ("Raj",), "Mohinder": ("Mohindar",), "Gurpreet": ("Gurprit",), "Harpreet": ("Harprit",),
    "Oluwaseun": ("Seun",), "Chinedu": ("Chinedum",), "Abdirahman": ("Abdi Rahman", "Abdirahmaan"),
    "Mohamud": ("Mohamed", "Mahmoud"), "Emmanuel": ("Emma", "Manny"),
    "Zoë": ("Zoe",), "Chloë": ("Chloe",), "Renée": ("Renee",),
}
SURNAME_VARIANTS: dict[str, tuple[str, ...]] = {
    "Hussain": ("Hussein", "Husain"), "Rahman": ("Rehman",), "Chowdhury": ("Choudhury", "Chaudhry"),
    "Hossain": ("Hussain", "Hosain"), "Mohamed": ("Mohammed", "Mohamud"), "Ahmed": ("Ahmad",),
    "Al-Hassan": ("Alhassan", "Al Hassan", "Hassan"), "Al-Rashid": ("Alrashid", "Rashid"),
    "El-Sayed": ("Elsayed", "Sayed"), "Uddin": ("Udin",), "Miah": ("Mia",), "Begum": ("Begam",),
    "Zhang": ("Chang",), "Chen": ("Chan",), "Wu": ("Woo",), "Li": ("Lee",), "Huang": ("Wong",), "Liu": ("Lau",),
    "Zhou": ("Chow",), "Xu": ("Hsu",), "Cheung": ("Zhang",), "Ng": ("Wu",),
    "McDonald": ("MacDonald", "Mcdonald"), "McCarthy": ("MacCarthy",), "O'Neill": ("O'Neil",),
    "Wiśniewski": ("Wisniewski",), "Wójcik": ("Wojcik",), "Woźniak": ("Wozniak",),
    "Mensah": ("Mensa",), "Adeyemi": ("Adeyimi",), "Okonkwo": ("Okonko",), "Abdi": ("Abdie",),
    "Mahmood": ("Mahmud",), "Iqbal": ("Ikbal",), "Akhtar": ("Akhter",), "D'Souza": ("De Souza", "Dsouza"),
}

# What a system that cannot hold diacritics or apostrophes stores instead.
ASCII_FOLD = str.maketrans({
    "ë": "e", "é": "e", "è": "e", "á": "a", "à": "a", "ó": "o", "ö": "o", "ú": "u", "ü": "u", "í": "i",
    "ł": "l", "Ł": "L", "ś": "s", "Ś": "S", "ż": "z", "ź": "z", "ć": "c", "ń": "n", "ą": "a", "ę": "e",
    "ț": "t", "ș": "s", "ç": "c", "'": "",
})

# Postcode areas of one synthetic region, with the district shape each uses after the area letters:
# "9" (M1, LS6), "99" (M14, LS11) or "9A" (W1A, SW1A), giving A9 A99 AA9 AA99 A9A AA9A + " 9AA".
POSTCODE_AREAS: tuple[tuple[str, str], ...] = (
    ("LS", "9"), ("LS", "99"), ("BD", "9"), ("BD", "99"), ("M", "9"), ("M", "99"), ("B", "9"), ("B", "99"),
    ("E", "9"), ("E", "9A"), ("N", "9"), ("SW", "9A"), ("SW", "99"), ("EC", "9A"), ("W", "9A"), ("NG", "9"),
    ("WF", "9"), ("HX", "9"),
)
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"   # letters used in inward codes (no C, I, K, M, O, V)

ORGANISATIONS = ("Northside Carers Centre", "Citizens Advice Central", "City Mind", "Age Concern Northside")

# Background events with codes in no codelist, so cohorts must filter. Values: (code, system, has_value)
GP_NOISE_CODES: tuple[tuple[str, str, bool], ...] = (
    ("22298006", "SNOMED", False), ("44054006", "SNOMED", False), ("195662009", "SNOMED", False),
    ("271737000", "SNOMED", False), ("386661006", "SNOMED", False), ("161891005", "SNOMED", False),
    ("25064002", "SNOMED", False), ("68566005", "SNOMED", False), ("13645005", "SNOMED", False),
    ("271649006", "SNOMED", True), ("27113001", "SNOMED", True), ("60621009", "SNOMED", True),
    ("322236009", "DMD", False), ("323510009", "DMD", False), ("317335002", "DMD", False),
    ("318420003", "DMD", False), ("325072002", "DMD", False),
)
SYSTOLIC_BP_CODE = "271649006"

# ICD-10 noise: near misses on either side of the self-harm (X60-X84) and cancer (C00-C97) ranges.
ICD10_NOISE = ("J45.9", "I10", "K35.8", "S72.0", "R07.4", "N39.0", "D12.6", "D05.1", "X59.9", "X85", "Y87.0",
               "E11.9", "J18.9", "M54.5", "R10.4", "O80.0", "Z51.1", "F32.9")
SPECIALTY_NOISE = ("100", "300", "420", "711", "320", "110", "502", "180", "410")
REFERRAL_NOISE = ("GP", "Consultant", "Self", "A&E")
SOCIAL_CARE_REASONS = ("Physical support", "Support with memory and cognition", "Learning disability support",
                       "Sensory support", "Social support")
SOCIAL_CARE_SERVICES = ("Home care", "Residential care", "Direct payment", "Day care", "Equipment")
THIRD_SECTOR_REASONS = ("Debt", "Housing", "Benefits", "Mental wellbeing", "Befriending")
