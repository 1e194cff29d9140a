"""Cue lexicons for the captured-soldier claim detector.

Russian and Ukrainian entries are pymorphy3 lemmas (ё folded to е, apostrophes
unified to '); English entries are Snowball stems unless a set says it holds
normalized word forms. Every set is a general linguistic class, never a
phrase lifted from one post.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- captivity vocabulary -------------------------------------------------------------

# Nouns that name a prisoner of war: a mention is itself a report of captives.
POW_NOUNS = _words("пленный военнопленный полонений військовополонений pow")
# The noun "captivity" in "взять в плен", "в полоні", "из плена".
CAPTIVITY_NOUNS = _words("плен плена полон")
# Verbs that form a capture with "в плен / в полон": take, capture, fall into, surrender,
# end up, be held, remain.
INTO_CAPTIVITY_VERBS = _words(
    "взять брать взятый захватить захватывать захват попасть попадать угодить сдаться"
    " сдаваться оказаться оказываться находиться оставаться томиться удерживать держать"
    " сдача взятие пленение попадание уводить увести выйти выходить"
    " взяти брати узяти захопити захоплювати захоплення потрапити потрапляти опинитися"
    " опинятися перебувати залишатися здатися здаватися утримувати тримати здача взяття"
    " потрапляння вийти виходити"
)
# Verbal nouns among those: "сдача в плен", "полонення". A nominalization names the
# kind of act ("добровольная сдача в плен карается..."), so it reports a capture only
# together with the captives ("о сдаче в плен бойцов 36-й бригады").
CAPTIVITY_NOMINALS = _words(
    "сдача взятие пленение попадание захват здача взяття полонення потрапляння захоплення"
)
# Verbs and nouns that mean "to take prisoner" on their own.
CAPTURE_SELF_VERBS = _words("пленить пленение полонити полонення")
# Verbs of capture that need a person as the thing captured ("захватили офицера",
# not "захватили высоту").
CAPTURE_VERBS = _words("захватить захватывать захопити захоплювати захват захоплення")
CAPTURE_VERBS_EN = _words("captur seiz")
# "взяли живыми" — taking someone alive.
TAKE_VERBS = _words("взять брать взяти брати узяти")
ALIVE = _words("живой живий")
# Surrender without an explicit "в плен": needs a military person in the sentence.
SURRENDER_VERBS = _words("сдаться сдаваться здатися здаватися")
SURRENDER_EN = _words("surrend")
# Surrender idioms without the verb: "сложили оружие", "склали зброю", "laid down their
# arms", "подняли белый флаг". Pairs of (first, second) lemmas a few words apart;
# like a bare "сдались" they need a military person in the sentence.
SURRENDER_PAIRS = (
    (_words("сложить складывать скласти складати"), _words("оружие зброя")),
    (_words("белый білий"), _words("флаг прапор")),
    (_words("поднять поднятый поднимать підняти піднятий піднімати"), _words("рука")),
)
SURRENDER_PAIRS_EN = (
    (_words("lay laid lie lai"), _words("arm weapon")),
    (_words("give gave given giving gives"), _words("themselv himself up")),
    (_words("white"), _words("flag")),
    (_words("hand"), _words("up rais")),
)
SURRENDER_FIRST = frozenset().union(*(first for first, _ in SURRENDER_PAIRS))
SURRENDER_FIRST_EN = frozenset().union(*(first for first, _ in SURRENDER_PAIRS_EN))
# Holding someone: needs a military person as object.
HOLD_VERBS = _words("удерживать утримувати")
HOLD_EN = _words("hold held")
# English: "taken prisoner", "took 14 soldiers prisoner", "held captive", "in captivity".
TAKE_EN_FORMS = _words("take takes taken took taking held hold holding")
PRISONER_EN = _words("prison captiv")
HOLD_EN_FORMS = _words("held hold holding")
PRONOUNS_EN = _words("he she they him her them we us")
CAPTIVITY_EN = _words("captiv custodi")
# Tokens of "prisoner(s) of war": prison + of + war.
POW_PHRASE_EN = ("prison", "of", "war")

# Lemmas whose presence makes a sentence worth a closer look (the fast pre-check).
TRIGGERS = (
    POW_NOUNS
    | CAPTIVITY_NOUNS
    | CAPTURE_SELF_VERBS
    | CAPTURE_VERBS
    | CAPTURE_VERBS_EN
    | SURRENDER_VERBS
    | SURRENDER_EN
    | HOLD_VERBS
    | PRISONER_EN
    | CAPTIVITY_EN
    | ALIVE
    | _words("alive рука сложить складывать скласти складати флаг прапор arm weapon themselv")
    | _words("himself flag hand")
)

# Captivity words that, in a sentence calling a report false, make it a denial even
# without a full claim ("reports of mass surrender are disinformation").
MENTIONS = (
    POW_NOUNS
    | CAPTIVITY_NOUNS
    | CAPTURE_SELF_VERBS
    | SURRENDER_VERBS
    | SURRENDER_EN
    | PRISONER_EN
    | CAPTIVITY_EN
)

# --- people ----------------------------------------------------------------------------

# Military persons (and the usual war-channel words for them), ru + uk lemmas.
MILITARY_PERSONS = _words(
    "военнослужащий солдат боец военный контрактник срочник мобилизованный призывник офицер"
    " командир пограничник десантник морпех штурмовик снайпер разведчик диверсант наемник"
    " боевик оккупант танкист артиллерист пулеметчик минометчик сапер связист пилот летчик"
    " лейтенант сержант капитан майор полковник рядовой ефрейтор прапорщик росгвардеец"
    " нацгвардеец вагнеровец кадыровец ахматовец всушник азовец мотострелок спецназовец"
    " пехотинец гранатометчик дрг"
    # combat roles: who directs, spots and operates weapons is a soldier too
    " корректировщик наводчик оператор стрелок огнеметчик медик санитар наблюдатель радист"
    " дронщик"
    " військовий військовослужбовець боєць вояк строковик мобілізований призовник офіцер"
    " прикордонник морпіх розвідник найманець бойовик окупант танкіст артилерист"
    " кулеметник мінометник сапер льотчик лейтенант рядовий росгвардієць нацгвардієць"
    " вагнерівець кадирівець ахматівець штурмовик спецпризначенець піхотинець орк рашист"
    " захисник оборонець вояка"
    " коригувальник навідник оператор стрілець вогнеметник медик санітар спостерігач радист"
    " дронар диверсант снайпер"
)
# Nationals of the warring sides and foreign fighters: in a war report they are soldiers.
NATIONALS = _words(
    "россиянин украинец британец кореец поляк колумбиец грузин американец француз"
    " росіянин українець британець кореєць поляк колумбієць грузин американець француз"
)
# Military units: "сдался в плен взвод", "в полон потрапив екіпаж".
UNITS = _words(
    "взвод рота батальон расчет экипаж подразделение отделение"
    " взвод рота батальйон розрахунок екіпаж підрозділ відділення"
)
# Nouns of quantity that stand before the captives: "захватили группу диверсантов".
QUANTITY_NOUNS = _words(
    "группа часть десяток сотня несколько ряд множество група частина десяток сотня кілька"
    " низка безліч"
)
# Collective numerals standing alone are people: "ещё двое сдались", "троє потрапили".
COLLECTIVE_NUMERALS = _words(
    "двое трое четверо пятеро шестеро семеро восьмеро девятеро десятеро"
    " двоє троє четверо п'ятеро шестеро семеро восьмеро дев'ятеро десятеро"
)
# Generic persons, military only together with a military marker word.
GENERIC_PERSONS = _words("человек мужчина людина чоловік")
# Adjectives used as nouns ("военные", "військові"): persons only when no noun follows.
SUBSTANTIVES = _words(
    "военный военнослужащий мобилизованный рядовой військовий мобілізований рядовий"
)
# Military formations: "в плену у бригады" is not a metaphor.
MILITARY_GROUPS = _words(
    "армия войско войска бригада группировка подразделение батальон полк дивизия легион"
    " корпус отряд армія військо бригада угруповання підрозділ батальйон полк дивізія"
    " легіон корпус загін"
)
# "Никаких пленных нет", "жодних полонених": a determiner that negates the noun.
# "ни одного пленного" is caught by its "ни"; "один из пленных" is one of them.
NEGATIVE_DETERMINERS = _words("никакой жодний жоден no none")
# "в наших руках", "в руках противника", "у ворога в руках": held by a side.
HANDS = _words("рука")
HOLDERS = _words(
    "наш мы ми их свой противник враг ворог супротивник окупант боевик всу зсу рдк легион легіон"
)
HOLDING_VERBS = _words("удерживать держать утримувати тримати")
MILITARY_MARKERS = _words("военный форма всу рф вс зсу військовий армия армія")

PERSONS_EN = _words(
    "soldier servicemen serviceman troop fighter marin paratroop conscript offic command pilot"
    " sniper guard mercenari milit infantryman gunner tankman crew pow soldiers trooper"
    " stormtroop defend scout recruit sergeant lieuten captain colonel squad platoon detach"
    " saboteur infiltr spotter medic"
)
# Exact forms: Snowball would join "operators" with "operations".
PERSON_NORMS_EN = _words(
    "russians ukrainians koreans men servicemen operator operators member members"
)
# Words that may stand between an English verb and its object noun.
EN_SKIP = _words(
    "a an the two three four five six seven eight nine ten eleven twelve dozen dozens"
    " several some more russian ukrainian north korean chechen wounded enemy young other"
    " at least about around over nearly of its their his her our alive contract border"
    " another one group few many further additional team teams groups entire whole sabotage"
    " recon reconnaissance assault special forces airborne drone drones artillery mortar"
    " missile"
)
BE_EN = _words("was were been being is are be get got gets getting had has have")

# --- context that turns a cue into something else ---------------------------------------

# What records rather than takes: "the camera captured soldiers fleeing" (Snowball stems).
RECORDINGS_EN = _words("video camera footag bodycam photo imag lens film record stream")
# Weapons, vehicles and gear: "не солдаты, а их техника" says what was taken was not people.
EQUIPMENT = _words(
    "техника танк бмп бтр машина грузовик автомобиль пушка орудие гаубица миномет оружие"
    " боеприпас снаряжение дрон беспилотник бпла рация трофей"
    " техніка танк бмп бтр машина вантажівка автомобіль гармата гаубиця міномет зброя"
    " боєприпас спорядження дрон безпілотник рація трофей"
    " equip vehicl tank truck gun howitz mortar weapon ammunit drone radio trophi"
)
# "не X, а Y", "not X but Y", "Y, а не X": what follows corrects what was said.
CONTRAST_WORDS = _words("а але но but rather onli лише лишь только тільки")

NEGATIONS = _words("не ни нет никто нема немає ні ніхто жоден жодний not no none never nobody")
# Words that state a report is false.
DENIAL_WORDS = _words(
    "опровергнуть опровергать опровержение отрицать фейк фэйк вброс ложь неправда"
    " дезинформация постановочный постановка инсценировка инсценировать опровергнутый"
    " спростувати спростовувати спростування заперечити заперечувати фейк вигадка"
    " неправда дезінформація постановочний постановка інсценування пропаганда брехня брехливий"
    " deni dismiss refut debunk fake fals untru stage fabric hoax disinform misinform"
    " propaganda lie"
)
# "не соответствует действительности", "не відповідає дійсності", "не подтверждается".
NEGATED_CONFIRM = _words(
    "подтверждаться подтвердить подтверждать підтверджуватися підтвердити підтверджувати confirm"
)
MATCH_VERBS = _words("соответствовать відповідати")
TRUTH_NOUNS = _words("действительность правда реальность дійсність правда реальність")
# "готовы обменять", "предлагают обмен", "offers to swap them": captors proposing a swap
# of the captives they report, which is still the capture claim.
EXCHANGE_OFFERS = _words(
    "предлагать предложить готовый хотеть намерен планировать пропонувати запропонувати"
    " готовий хотіти планувати offer propos readi want plan"
)
# "пополнили обменный фонд": war-channel slang for taking prisoners.
EXCHANGE_FUND = _words("фонд fund")
EXCHANGE_WORDS = _words(
    "обмен обменять обменяться обмениваться обменный обмін обміняти обмінятися обмінюватися"
    " обмінний exchang swap repatri"
)
RETURN_WORDS = _words(
    "вернуться вернуть возвращение возвращаться вернувшийся домой репатриация"
    " повернутися повернути повернення повертатися додому return home"
)
# "освобождённые из плена", "звільнені з полону", "freed POWs".
RELEASE_WORDS = _words(
    "освободить освобождать освобождение освобожденный звільнити звільняти звільнення"
    " звільнений free releas"
)
FROM_PREPS = _words("из с з із зі from")

HEDGES = _words(
    "якобы будто якобы-то предположительно вероятно возможно предварительно утверждать"
    " неподтвержденный непроверенный"
    " нібито начебто буцімто ймовірно можливо попередньо стверджувати непідтверджений"
    " alleg purport claim unconfirm unverifi appar appear possibl suppos"
)
# Snowball folds "reportedly" into "report", so these are matched as word forms.
HEDGE_NORMS_EN = _words("reportedly purportedly allegedly supposedly seemingly")
# Hedges made of a preposition and a noun: "по данным", "по информации", "за даними".
HEDGE_PREPS = _words("по за according")
HEDGE_HEADS = _words("данные информация сведение дані інформація відомості to")

HYPOTHETICAL = _words("если якщо якби чтобы щоб аби if unless whether")
# "в случае попадания", "у разі потрапляння": the noun after the preposition.
HYPOTHETICAL_HEADS = _words("случай раз випадок")
# Modal or normative words: "пленные должны получать помощь", "captured soldiers must...".
NORMATIVE = _words(
    "должный обязанный следовать нужно надо необходимо повинний мусити слід треба must should ought"
)
FUTURE_EN = _words("will would could might may")
# "удалось взять в плен", "вдалося полонити": an infinitive that did happen.
SUCCESS_VERBS = _words(
    "удаться суметь смочь получиться вдатися змогти зуміти пощастити manag succeed"
)
GENERIC_QUANTIFIERS = _words("каждый любой всякий кожен кожний будь-який every any each")

ORGANISATION_HEADS = _words(
    "штаб коордштаб комиссия комитет центр управление департамент служба бюро"
    " штаб комісія комітет центр управління департамент служба бюро"
    " headquart committe commiss centr center bureau agenc depart"
)
# Category references to POWs: their families, rights, status, the law on them.
POLICY_HEADS = _words(
    "семья родственник родные мать жена права право статус закон выплата пособие обращение"
    " содержание условие защита"
    " сім'я родина родич рідні мати дружина права право статус закон виплата поводження"
    " утримання умова захист"
    # the Geneva Convention, lists, access and visits, and mistreatment of those held
    " конвенция отношение список перечень доступ допуск допустить посещение пытка пытать"
    " истязать конвенція перелік відвідування візит допустити катування катувати знущання"
    " famili relat right status law treatment access condit welfar list visit convent"
    " tortur mistreat abus"
)
HOSTAGE_WORDS = _words("заложник заложница заручник заручниця hostag")
HISTORY_WORDS = _words("wwii ww2")
# "Великая Отечественная", "Вторая мировая", "Друга світова", "World War II".
HISTORY_PAIRS = (
    ("великий", "отечественный"),
    ("второй", "мировой"),
    ("великий", "вітчизняний"),
    ("другий", "світовий"),
    ("world", "war"),
)
YEAR_WORDS = _words("год рік year")
YEAR_PREPS = _words("в во у in dure by sinc")
AGO_WORDS = _words("назад тому ago")
# "годовщина", "річниця", "anniversary": a commemoration, not a new report.
ANNIVERSARY_WORDS = _words("годовщина річниця роковини anniversari")

# Words after a number that say it does not count people.
NOT_PEOPLE_UNITS = _words(
    "год лет час сутки день неделя месяц минута км километр метр процент танк единица"
    " погибший убитый раненый тело рубль доллар евро гривна раз направление атака"
    " рік година доба день тиждень місяць хвилина кілометр метр відсоток одиниця"
    " загиблий убитий поранений тіло гривня напрямок атака"
    " year hour day week month minut km kilometr metr percent tank dead kill wound bodi"
)

NUMBER_WORDS: dict[str, int] = {
    "один": 1,
    "одна": 1,
    "два": 2,
    "две": 2,
    "двое": 2,
    "оба": 2,
    "три": 3,
    "трое": 3,
    "четыре": 4,
    "четверо": 4,
    "пять": 5,
    "пятеро": 5,
    "шесть": 6,
    "шестеро": 6,
    "семь": 7,
    "семеро": 7,
    "восемь": 8,
    "восьмеро": 8,
    "девять": 9,
    "девятеро": 9,
    "десять": 10,
    "десятеро": 10,
    "одиннадцать": 11,
    "двенадцать": 12,
    "тринадцать": 13,
    "четырнадцать": 14,
    "пятнадцать": 15,
    "шестнадцать": 16,
    "семнадцать": 17,
    "восемнадцать": 18,
    "девятнадцать": 19,
    "двадцать": 20,
    "тридцать": 30,
    "сорок": 40,
    "пятьдесят": 50,
    "шестьдесят": 60,
    "семьдесят": 70,
    "восемьдесят": 80,
    "девяносто": 90,
    "сто": 100,
    "двоє": 2,
    "обидва": 2,
    "троє": 3,
    "чотири": 4,
    "п'ять": 5,
    "п'ятеро": 5,
    "шість": 6,
    "сім": 7,
    "вісім": 8,
    "дев'ять": 9,
    "дев'ятеро": 9,
    "одинадцять": 11,
    "дванадцять": 12,
    "тринадцять": 13,
    "чотирнадцять": 14,
    "п'ятнадцять": 15,
    "шістнадцять": 16,
    "сімнадцять": 17,
    "вісімнадцять": 18,
    "дев'ятнадцять": 19,
    "двадцять": 20,
    "тридцять": 30,
    "п'ятдесят": 50,
    "шістдесят": 60,
    "сімдесят": 70,
    "вісімдесят": 80,
    "дев'яносто": 90,
}
NUMBER_WORDS_EN: dict[str, int] = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "both": 2,
    "dozen": 12,
}
