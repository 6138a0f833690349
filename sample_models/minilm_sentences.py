"""Sentences written for this project to evaluate the MiniLM sentence encoder (no external data set).

- `PARAPHRASE_PAIRS`: 40 pairs of sentences that say the same thing in different words, 4 per topic.
- `UNRELATED`: 20 single sentences, 2 per topic, on the same topics but not paraphrasing anything.
- `CALIBRATION`: 32 further sentences for activation calibration, disjoint from the evaluation set.

Each topic holds several pairs, so the nearest-neighbour task is not trivial: a sentence's partner must beat
other sentences about the same subject.
"""

from __future__ import annotations

PARAPHRASE_PAIRS: tuple[tuple[str, str, str], ...] = (
    # (topic, sentence, paraphrase)
    (
        "quantization",
        "Quantization stores each weight as a small integer instead of a 32-bit float.",
        "Rather than keeping weights as 32-bit floats, quantization saves them as short integers.",
    ),
    (
        "quantization",
        "Going from eight bits to four bits makes the rounding error much larger.",
        "Cutting the precision from 8 to 4 bits greatly increases the rounding noise.",
    ),
    (
        "quantization",
        "A single outlier weight stretches the range and wastes most of the integer grid.",
        "One extreme value widens the scale so that most quantization levels go unused.",
    ),
    (
        "quantization",
        "Per-channel scales give every output channel its own step size.",
        "With per-channel quantization each output channel gets a separate scale factor.",
    ),
    (
        "cooking",
        "Let the dough rest for an hour before you bake the bread.",
        "Before baking the loaf, leave the dough to rise for sixty minutes.",
    ),
    (
        "cooking",
        "Add a pinch of salt to the boiling water before the pasta goes in.",
        "Salt the pot of water lightly once it boils, then add the noodles.",
    ),
    (
        "cooking",
        "Chop the onions finely and fry them until they turn golden.",
        "Dice the onion into small pieces and cook it in a pan until it is lightly browned.",
    ),
    (
        "cooking",
        "This soup tastes better the day after you make it.",
        "The soup is even more delicious when eaten the following day.",
    ),
    (
        "sport",
        "The striker scored twice in the last ten minutes of the match.",
        "In the final ten minutes of the game the forward netted two goals.",
    ),
    (
        "sport",
        "She finished the marathon in just under three hours.",
        "Her time for the marathon was a little less than three hours.",
    ),
    (
        "sport",
        "The tennis final was postponed because of the rain.",
        "Rain forced the organisers to delay the championship tennis match.",
    ),
    ("sport", "Our team has not lost a single game this season.", "So far this season the team is unbeaten."),
    (
        "weather",
        "Heavy snow is expected in the mountains tonight.",
        "Forecasters predict a lot of snowfall in the mountains this evening.",
    ),
    (
        "weather",
        "It has been unusually hot and dry for the whole of July.",
        "July was exceptionally warm, with almost no rain all month.",
    ),
    (
        "weather",
        "Take an umbrella, it is going to rain this afternoon.",
        "Bring your umbrella because showers are coming later today.",
    ),
    (
        "weather",
        "A thick fog covered the harbour early in the morning.",
        "At dawn the port was hidden under a dense mist.",
    ),
    (
        "travel",
        "Our flight to Lisbon was delayed by three hours.",
        "The plane to Lisbon left three hours later than scheduled.",
    ),
    (
        "travel",
        "I booked a small hotel close to the old town.",
        "I reserved a room in a little hotel near the historic centre.",
    ),
    (
        "travel",
        "The night train is cheaper than flying and you save a night in a hotel.",
        "Taking the sleeper train costs less than a flight and spares you a hotel night.",
    ),
    (
        "travel",
        "Don't forget to check whether you need a visa before you travel.",
        "Make sure you find out if a visa is required before your trip.",
    ),
    (
        "programming",
        "The function crashes when the input list is empty.",
        "Passing an empty list to this function makes it fail.",
    ),
    (
        "programming",
        "Write unit tests before you refactor the old code.",
        "Before restructuring legacy code, add tests that cover it.",
    ),
    (
        "programming",
        "This loop runs much faster after we vectorised it with numpy.",
        "Rewriting the loop as vectorised numpy operations made it far quicker.",
    ),
    (
        "programming",
        "Always close the file after you have finished reading it.",
        "Once you are done reading a file, make sure it gets closed.",
    ),
    (
        "music",
        "The orchestra played Beethoven's fifth symphony last night.",
        "Yesterday evening the orchestra performed Beethoven's Symphony No. 5.",
    ),
    (
        "music",
        "He has been learning to play the guitar for two years.",
        "For the past two years he has been taking guitar lessons.",
    ),
    (
        "music",
        "The concert was sold out within minutes.",
        "All the tickets for the show were gone in a few minutes.",
    ),
    (
        "music",
        "Her new album sounds quieter and more personal than the previous one.",
        "Compared with her last record, the new album is calmer and more intimate.",
    ),
    (
        "health",
        "Drinking enough water helps you concentrate.",
        "Staying well hydrated makes it easier to focus.",
    ),
    (
        "health",
        "A short walk after dinner can lower blood sugar.",
        "Walking for a few minutes after a meal helps reduce glucose levels.",
    ),
    (
        "health",
        "Most adults need between seven and nine hours of sleep.",
        "Grown-ups typically require seven to nine hours of sleep each night.",
    ),
    (
        "health",
        "Wash your hands regularly to avoid catching a cold.",
        "Frequent hand washing helps prevent colds.",
    ),
    (
        "finance",
        "The central bank raised interest rates again this month.",
        "This month the central bank increased its interest rates once more.",
    ),
    (
        "finance",
        "Saving a little every month adds up over the years.",
        "Putting aside small amounts monthly grows into a large sum over time.",
    ),
    (
        "finance",
        "The company's profits fell sharply in the last quarter.",
        "Last quarter the firm's earnings dropped steeply.",
    ),
    (
        "finance",
        "Spreading your investments reduces the risk of a big loss.",
        "Diversifying your portfolio lowers the chance of losing a lot of money.",
    ),
    (
        "nature",
        "The bees are busy collecting pollen from the apple blossoms.",
        "Bees are gathering pollen from the flowers of the apple trees.",
    ),
    (
        "nature",
        "Wolves have returned to the forest after a hundred years.",
        "After a century of absence, wolves are living in the woods again.",
    ),
    (
        "nature",
        "The river floods the valley almost every spring.",
        "Nearly every spring the valley is flooded by the river.",
    ),
    (
        "nature",
        "Autumn leaves turn red and yellow as the days get shorter.",
        "As daylight shortens in the fall, the foliage changes to red and gold.",
    ),
)

UNRELATED: tuple[tuple[str, str], ...] = (
    ("quantization", "Calibration picks the clipping range from a few hundred example inputs."),
    ("quantization", "Quantization-aware training simulates rounding during the forward pass."),
    ("cooking", "My grandmother never measured anything when she baked."),
    ("cooking", "Cast iron pans should be dried straight after washing."),
    ("sport", "The stadium will be renovated before the next world cup."),
    ("sport", "Cyclists climbed the pass in thick fog during the fifth stage."),
    ("weather", "The wind turned north and the temperature dropped overnight."),
    ("weather", "Meteorologists use satellite images to track hurricanes."),
    ("travel", "The museum is closed on Mondays and public holidays."),
    ("travel", "You can rent bicycles at the entrance of the national park."),
    ("programming", "The compiler reports an error on line forty-two."),
    ("programming", "Our continuous integration pipeline runs on every pull request."),
    ("music", "The piano in the hall has not been tuned for months."),
    ("music", "Jazz musicians often improvise over a fixed chord progression."),
    ("health", "The clinic opens at eight but the queue starts forming at seven."),
    ("health", "Vitamin D is produced in the skin when it is exposed to sunlight."),
    ("finance", "The rent for the flat went up by ten percent this year."),
    ("finance", "Bitcoin's price swung wildly over the weekend."),
    ("nature", "Mushrooms appear in the woods after a few warm rainy days."),
    ("nature", "The glacier has retreated several hundred metres since 1950."),
)

CALIBRATION: tuple[str, ...] = (
    "Lower precision arithmetic lets the same chip run more operations per second.",
    "Rounding to the nearest integer introduces an error of at most half a step.",
    "The activation histogram has a long tail on the positive side.",
    "Fresh basil should be added to the sauce at the very end.",
    "We grilled vegetables on the barbecue in the garden.",
    "The recipe calls for two eggs and a cup of sugar.",
    "The goalkeeper saved a penalty in the first half.",
    "He trains at the swimming pool three mornings a week.",
    "The referee showed a red card after a dangerous tackle.",
    "Thunderstorms are likely along the coast tomorrow.",
    "The first frost of the year arrived early in October.",
    "Clear skies tonight mean it will be cold.",
    "The ferry to the island leaves every two hours.",
    "We lost our luggage during the connection in Frankfurt.",
    "The youth hostel had a kitchen guests could use.",
    "A memory leak slowly filled the server's RAM.",
    "Type hints make large Python code bases easier to read.",
    "The database query needs an index on the date column.",
    "The choir rehearses every Thursday evening in the church.",
    "She wrote the lyrics on the back of a train ticket.",
    "The drummer kept a steady beat throughout the song.",
    "Regular exercise strengthens the heart and lungs.",
    "The pharmacist explained how to take the medicine.",
    "Too much sugar is bad for your teeth.",
    "Inflation made groceries noticeably more expensive.",
    "The startup raised money from two venture capital funds.",
    "Pay off the credit card before interest is charged.",
    "Owls hunt at night and sleep during the day.",
    "Coral reefs are threatened by warming oceans.",
    "A fox crossed the road in front of our car.",
    "The library extended its opening hours during exams.",
    "Our neighbours adopted a puppy from the animal shelter.",
)


def eval_sentences() -> list[str]:
    """The evaluation sentences in a fixed order: pairs first (``2k``, ``2k+1`` are partners), then unrelated."""
    sentences = [s for _, a, b in PARAPHRASE_PAIRS for s in (a, b)]
    return sentences + [s for _, s in UNRELATED]


def partner_indices() -> list[int]:
    """For each evaluation sentence, the index of its paraphrase partner, or -1 for unrelated sentences."""
    n_pair_sentences = 2 * len(PARAPHRASE_PAIRS)
    return [i ^ 1 for i in range(n_pair_sentences)] + [-1] * len(UNRELATED)
