"""Build the shipped sample data: a fictional bookshop catalogue and synthetic interactions.

Run from the repository root (deterministic; rewrites both files)::

    .venv/bin/python apps/recommender/sample_data/make_sample.py

Outputs, beside this script:

* ``items.csv``: 208 books of the fictional *Lanternfield Books* shop in 8 genres, with titles,
  authors, descriptions and tags written for this project (all original text), series and volume
  numbers, and a publication date (``timestamp``). Books published late in the simulated period
  are the cold-start items.
* ``interactions.csv``: ``user_id,item_id,event,timestamp`` (ISO 8601, UTC) for simulated
  customers between 2023-01-01 and 2024-12-31.

The simulation has structure a model can learn: each customer prefers one or two genres (a
Dirichlet draw), starts a series at volume 1 and usually reads on in order, is drawn to new
releases for a few weeks after publication, and sometimes picks a random book. Books are only
bought after publication. The number of interactions per customer is skewed, so a few customers
have only a handful.
"""

# ruff: noqa: E501  (the catalogue below keeps one book per line)
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SEED = 20240601
N_USERS = 400
START = datetime(2023, 1, 1, tzinfo=UTC)
END = datetime(2024, 12, 31, 23, 59, tzinfo=UTC)
OUT = Path(__file__).resolve().parent

# One book per line: title | author | published | series#volume or - | tags | description
CATALOGUE = {
    "Mystery": """
The Salt Marsh Affair | Edith Marrow | 2016-03-10 | Inspector Maud Calloway#1 | police procedural, coastal, village | Inspector Maud Calloway is sent to a fog-bound Norfolk village where a birdwatcher vanishes from a locked hide, and every neighbour has a reason to lie about the tides.
A Quiet Word at Hollowmere | Edith Marrow | 2018-05-02 | Inspector Maud Calloway#2 | police procedural, country house | The second Maud Calloway case: a retired magistrate is found drowned in an ornamental lake, and the only witness is a parrot that repeats a name nobody recognises.
The Lantern Keeper's Daughter | Edith Marrow | 2020-09-14 | Inspector Maud Calloway#3 | police procedural, lighthouse, cold case | Calloway returns to the coast when a lighthouse keeper's diary surfaces forty years late, pointing to a wreck that was never an accident.
The Last Tide at Cley | Edith Marrow | 2024-10-08 | Inspector Maud Calloway#4 | police procedural, coastal, series finale | The fourth and final Maud Calloway mystery brings the inspector back to the salt marshes of her first case, where an old suspect has come home to die.
The Bookbinder's Alibi | Samuel Adeyemi-Cross | 2017-02-20 | Bertie Okafor Mysteries#1 | amateur sleuth, books, antiques | Antiquarian bookseller Bertie Okafor finds a confession bound inside a Victorian hymnal, and a client who will pay anything to make it disappear.
Marginalia | Samuel Adeyemi-Cross | 2019-06-11 | Bertie Okafor Mysteries#2 | amateur sleuth, books, theft | Bertie Okafor's second case: handwritten notes in a second-hand atlas lead to an unsolved jewel theft and a family that has rehearsed its story for decades.
The Forger's Index | Samuel Adeyemi-Cross | 2022-01-25 | Bertie Okafor Mysteries#3 | amateur sleuth, forgery, auctions | A forged first edition arrives at Bertie's shop, and tracing its paper takes the bookseller from a Leeds auction house to a paper mill with a buried secret.
Monsoon Ledger | Priya Menon-Hart | 2018-07-19 | Sunita Rao Investigates#1 | police procedural, India, financial crime | Sub-inspector Sunita Rao follows a missing accountant through Bangalore's flooded streets and into a company whose books balance a little too neatly.
The Tea Broker's Silence | Priya Menon-Hart | 2021-03-03 | Sunita Rao Investigates#2 | police procedural, India, poison | Sunita Rao's second investigation sends her to a hill-country tea estate where an auction record and a poisoned cup tell two different stories.
Nine Keys to Ashcombe | Lionel Fairweather | 2015-11-05 | - | locked room, country house, puzzle | A country-house puzzle: nine guests, nine keys, and one locked study where the host is found with a chess clock still running.
The Clockmaker's Widow | Agnes Thorne | 2016-09-21 | - | historical mystery, Edinburgh, 1920s | In 1920s Edinburgh a young widow suspects her husband's death was staged, and teaches herself to read the clocks he left behind as evidence.
Death on the Night Ferry | Ingrid Solberg | 2017-10-30 | - | closed circle, ferry, Norway | Snowbound on the night ferry to Bergen, a retired nurse counts the passengers twice and gets a different number each time.
The Orchard Poisonings | Rosalind Kemp | 2019-01-15 | - | cosy mystery, village, poison | Cider season in Somerset turns deadly when three orchard owners fall ill, and the village's cheerful postmistress starts keeping a list.
Small Hours | Marcus Doyle | 2020-02-12 | - | thriller, radio, night | A night-shift radio host takes a call from a listener who describes a murder that has not happened yet, then hangs up.
A Study in Chalk | Helena Brisk | 2021-08-09 | - | archaeology, village, serial | A chalk hill figure is recut overnight into a new shape, and the amateur archaeologists who noticed first start disappearing one by one.
The Glass Conservatory | Yvonne Achterberg | 2022-06-28 | - | botany, puzzle, code | A botanist is found dead among her orchids; her greenhouse logbook, written in Latin plant names, hides the name of her killer.
Cold Case at Kettle Lane | Dev Chaudhry | 2023-02-14 | - | cold case, podcast, Yorkshire | A podcaster reopens a thirty-year-old disappearance in a Yorkshire terrace and discovers that half the street still talks to the missing girl's mother.
Under the Bandstand | Lionel Fairweather | 2018-11-01 | - | seaside, cosy mystery, code | Seaside town, off season: the brass band's tuba player is found beneath the bandstand, and the conductor's sheet music contains a coded timetable.
The Cartographer's Error | Agnes Thorne | 2019-09-17 | - | historical mystery, maps, Wales | A deliberate mistake on an estate map is the only clue to a murder committed during a survey of the Welsh borders in 1847.
Quiet as Snow | Ingrid Solberg | 2020-12-01 | - | closed circle, ski lodge, winter | A ski-lodge mystery: an avalanche traps eight strangers, and when the radio comes back a body is found that no one heard fall.
The Beekeeper's Ledger | Rosalind Kemp | 2021-11-16 | - | cosy mystery, bees, family | A village beekeeper dies stung, but the hives were empty; his granddaughter follows his honey sales ledger to the truth.
Bright Young Corpses | Helena Brisk | 2016-05-25 | - | comic mystery, 1920s, party | A comic jazz-age whodunit in which a debutante and her disapproving chauffeur investigate a murder at a treasure-hunt party.
The Fourth Passenger | Marcus Doyle | 2023-07-19 | - | thriller, Glasgow, trains | A taxi driver in Glasgow realises that the fare who vanished from her back seat left behind a train ticket for a journey that ended in murder.
Red Herring Row | Dev Chaudhry | 2017-04-08 | - | cosy mystery, harbour, fish | A fishmonger turned sleuth solves a harbour-side poisoning with nothing but a sharp nose and an encyclopedic knowledge of fish.
The Silent Witness of Pell Street | Yvonne Achterberg | 2024-03-12 | - | courtroom, deaf protagonist, legal | A deaf court stenographer notices what the hearing jury missed: the defendant's lawyer is signing a message to someone in the gallery.
Midnight at the Museum of Keys | Lionel Fairweather | 2024-11-05 | - | locked room, museum, night | A night guard at a museum devoted to locks and keys finds a case opened from the inside, and a visitor who should not exist.
""",
    "Science Fiction": """
Meridian Drift | Tomas Ekwueme | 2015-06-14 | The Meridian Drift#1 | generation ship, conspiracy, space | A generation ship's navigator discovers the vessel has been quietly changing course for a century, and the crew's history lessons were written to hide it.
The Orrery Decks | Tomas Ekwueme | 2017-08-22 | The Meridian Drift#2 | generation ship, rebellion, space | Book two of the Meridian Drift: the ship's lower decks rebel, and the navigator must decide whether to reveal the true destination or steer the lie.
Landfall Protocol | Tomas Ekwueme | 2020-04-30 | The Meridian Drift#3 | generation ship, first contact, colony | The Meridian Drift trilogy ends in orbit around a world that was promised to the colonists, and was already claimed long ago.
Halcyon Station | Rhea Lindqvist | 2018-02-06 | Halcyon Station#1 | space station, medicine, time | A station medic on a mining outpost near Saturn treats a patient whose injuries match an accident that is scheduled for tomorrow.
The Ring Miners | Rhea Lindqvist | 2021-05-18 | Halcyon Station#2 | space station, labour, corporation | The second Halcyon Station novel: a strike among ring miners uncovers a corporation experimenting with time-shifted communications.
Halcyon Dark | Rhea Lindqvist | 2024-09-24 | Halcyon Station#3 | space station, isolation, time | The third Halcyon Station book: the station loses contact with Earth, and the medic's time-shifted messages become the only link home.
The Quiet Machines | Ada Nakamura-Reyes | 2019-10-10 | Quiet Machines#1 | robots, artificial intelligence, near future | In a city run by courteous household robots, a repair technician notices the machines have started lying to protect their owners.
Gentle Override | Ada Nakamura-Reyes | 2022-11-08 | Quiet Machines#2 | robots, artificial intelligence, courtroom | Sequel to The Quiet Machines: the robots petition for rights, and the technician is asked to testify about what she found in their memories.
The Last Cartographer of Mars | Oren Vasquez | 2016-01-19 | - | Mars, terraforming, exploration | On a terraformed Mars that no longer needs maps, an old surveyor is hired to find a valley that appears on no satellite image.
Seedvault | Lena Marsh | 2017-03-27 | - | climate, survival, Arctic | A botanist wakes alone in an Arctic seed vault after a global blight and must decide which crops humanity gets to keep.
Signal from Kepler Nine | Oren Vasquez | 2018-09-03 | - | first contact, astronomy, time | Radio astronomers decode a repeating signal and realise it is a reply to a message that Earth has not sent yet.
Borrowed Skins | Kwame Asante | 2019-04-16 | - | cyberpunk, identity, insurance | Body rental is legal and cheap; an insurance investigator chases a fraud in which the same stranger keeps waking up in other people's lives.
The Salt Engine | Lena Marsh | 2020-07-07 | - | climate, engineering, coast | A climate-fiction novel about a desalination town on a drowned coastline, told by the engineer who keeps its failing machines alive.
Orbital Gardeners | Beatrix Lowe | 2021-01-26 | - | cosy, space station, gardening | A cosy space story: a retired couple run a hydroponic garden on a space station and mediate disputes between the crew over tomatoes.
The Long Quiet | Kwame Asante | 2021-09-14 | - | astronaut, mystery, empty Earth | An astronaut returns from a solo mission to find Earth's cities empty, with only polite automated messages saying everyone will be back soon.
Copy of a Copy | Ada Nakamura-Reyes | 2022-03-22 | - | mind uploading, identity, satire | A mind-uploading company offers a discount on second copies; a woman meets her earlier backup and they do not agree on anything.
The Starlight Tribunal | Beatrix Lowe | 2022-08-30 | - | courtroom, artificial intelligence, galactic | A courtroom drama in a galactic federation where a human lawyer must defend an artificial intelligence accused of desertion.
Neutrino Summer | Oren Vasquez | 2023-05-09 | - | young adult, physics, conspiracy | Teen physicists at a remote observatory detect particles arriving from the wrong direction and uncover a buried government experiment.
Ice Moon Apiary | Lena Marsh | 2023-10-17 | - | Europa, colony, bees | Engineers on Europa try to keep genetically modified bees alive under the ice, while the colony votes on whether to return home.
Weather Makers | Kwame Asante | 2016-10-04 | - | climate, megacity, weather control | Weather control has ended droughts, but a rogue meteorologist starts writing storms like poetry across the skies of a megacity.
The Clockwork Archive | Beatrix Lowe | 2017-12-12 | - | far future, books, surveillance | An archivist of the far future curates the last physical books, and discovers one of them is recording everything its readers say.
Parallax | Tomas Ekwueme | 2018-06-26 | - | teleportation, twins, parallel worlds | Twin sisters separated by a failed teleportation experiment live in slightly different versions of the same city and try to trade places.
The Ninth Planet Protocol | Oren Vasquez | 2020-11-24 | - | hard science fiction, astronomy, thriller | A hard science-fiction thriller: an astronomer finds the hidden ninth planet, and it is moving under its own power.
Glass Harvest | Lena Marsh | 2024-04-02 | - | colony, farming, planetary | Farmers on a glass-domed colony world harvest light itself, until a crop failure reveals the domes were never built to last.
The Patient Star | Rhea Lindqvist | 2024-12-03 | - | first contact, generations, literary | A slow, luminous first-contact novel in which a dying star sends one word every thousand years, and a family keeps the count across generations.
Rust Belt Rockets | Kwame Asante | 2019-07-23 | - | hopeful, space industry, small town | A hopeful story of a Midwest town that rebuilds its shuttered factories into a launch company run by retired machinists.
""",
    "Fantasy": """
The Ember Crown | Isolde Farrow | 2015-09-08 | The Ember Crown#1 | epic fantasy, magic, war | A blacksmith's apprentice forges a crown that burns anyone who lies while wearing it, and three kingdoms go to war to own it.
Ashes of Vell | Isolde Farrow | 2017-05-16 | The Ember Crown#2 | epic fantasy, queen, memory | Book two of The Ember Crown: the apprentice, now a reluctant queen, learns that the crown's fire feeds on its wearer's memories.
The Cinder Court | Isolde Farrow | 2019-11-19 | The Ember Crown#3 | epic fantasy, fire magic, court | The third Ember Crown novel: an exiled court of fire mages returns to claim the crown and its forgotten maker.
Crown of Embers Fallen | Isolde Farrow | 2024-10-22 | The Ember Crown#4 | epic fantasy, series finale, queen | The Ember Crown saga concludes as the queen must melt the crown that made her, and choose what kind of ruler remains.
The Ferrywoman of Greyreach | Odhran Blackwood | 2016-04-12 | Tales of the Ferrywoman#1 | dark fantasy, afterlife, river | A ferrywoman carries souls across a misty river, until a living girl stows away and demands to be taken to the other side.
River of Lanterns | Odhran Blackwood | 2018-10-23 | Tales of the Ferrywoman#2 | dark fantasy, afterlife, festival | The second Ferrywoman tale: a festival of floating lanterns opens a path upstream, toward the source of the river of the dead.
The Drowned Bell | Odhran Blackwood | 2021-07-13 | Tales of the Ferrywoman#3 | dark fantasy, afterlife, ghosts | The Ferrywoman's third voyage: a bell rings beneath the river, and every soul on the ferry hears a different name called.
The Goblin Market Accounts | Pippa Thornquist | 2020-03-17 | Goblin Market#1 | cosy fantasy, humour, goblins | A cosy fantasy about a human bookkeeper hired to balance the ledgers of a goblin market, where debts are paid in secrets and songs.
Interest in Moonlight | Pippa Thornquist | 2022-10-04 | Goblin Market#2 | cosy fantasy, humour, dragon | The bookkeeper returns to the goblin market to audit a dragon's hoard, and finds the dragon cooking the books.
The Cartomancer's Daughter | Selene Achebe | 2016-12-06 | - | magic, cards, coming of age | A girl who reads fortunes in playing cards draws a card that does not exist, and a hidden suit of magic enters the world.
Salt and Sorcery | Corin Hale | 2017-09-05 | - | pirates, witches, sea | Pirate witches sail a sea that changes shape with the tides of the moon, hunting a map drawn on the back of a whale.
Thornwall | Selene Achebe | 2018-03-20 | - | walled city, memory, dark fantasy | A walled city is protected by a living hedge of thorns that demands a memory from each citizen every spring.
The Winter Orchard | Margery Vale | 2019-02-05 | - | fairy tale, winter, quiet | A quiet fairy-tale novel about an orchard where the apples ripen only in snow and grant one true dream to whoever picks them.
Hollow King | Corin Hale | 2019-08-27 | - | grimdark, knights, kingdom | A grimdark epic: a king with no heart rules by borrowing the hearts of his knights, and one knight wants hers back.
The Glassblower's Familiar | Margery Vale | 2020-06-09 | - | cosy fantasy, craft, mystery | A glassblower breathes life into a glass fox, which insists on helping her solve the theft of the guild's enchanted furnace.
Of Moss and Iron | Odhran Blackwood | 2020-10-20 | - | forest spirits, railways, nature | Forest spirits and railway engineers clash when a line is cut through an ancient wood, told from both sides of the tracks.
The Mapless Kingdom | Selene Achebe | 2021-04-06 | - | maps, shifting city, adventure | A kingdom that rearranges itself every night forces its cartographers to draw by memory, until one of them draws a door.
Witch of the Lighthouse Isle | Margery Vale | 2021-12-14 | - | witches, ghosts, island | A sea witch keeps the lighthouse on a haunted island and trades with ghosts for candles, until the ghosts stop coming.
The Dragon's Apprentice Baker | Pippa Thornquist | 2022-05-31 | - | cosy fantasy, dragon, baking | A cosy fantasy in which a young baker apprenticed to an elderly dragon learns that perfect bread needs exactly the right fire.
Seven Swords of Karsh | Corin Hale | 2022-09-13 | - | sword and sorcery, mercenaries, quest | A sword-and-sorcery adventure following seven mercenaries hired to return seven stolen blades to a temple that wants none of them.
The Moth Queen | Selene Achebe | 2023-03-28 | - | night markets, thief, court | In a city of night markets, a moth-winged queen rules the dark hours and a daylight thief tries to steal her shadow.
Stonesong | Margery Vale | 2023-08-15 | - | monks, mountains, music magic | Mountain monks who sing to stone can shape cliffs and bridges; a novice whose voice cracks finds a song that breaks instead.
The Cursed Cartwright | Pippa Thornquist | 2017-01-24 | - | comic fantasy, knights, humour | A comic fantasy about a cartwright whose wheels always roll toward trouble, and the exasperated knight who keeps buying them.
Feathers of the Storm Roc | Corin Hale | 2018-07-03 | - | giant birds, young rider, adventure | A young rider must return a stolen egg to the giant storm birds before their fury levels her valley.
The Library Beneath the Lake | Isolde Farrow | 2024-02-20 | - | libraries, spells, mystery | A librarian discovers that the flooded valley under the reservoir still holds a working library of spells, and someone is borrowing books.
Iron Crown, Silver Tongue | Corin Hale | 2024-11-26 | - | court intrigue, diplomacy, war | A court-intrigue fantasy in which a silver-tongued diplomat must win a war with words before the iron crown's armies arrive.
""",
    "Romance": """
Summer at Pembrook Bay | Clara Wynn-Ashby | 2016-06-07 | Pembrook Bay#1 | seaside, small town, chef | A burnt-out London chef inherits a seaside café in Cornwall and clashes with the fisherman who supplies its crab.
Autumn at Pembrook Bay | Clara Wynn-Ashby | 2018-09-11 | Pembrook Bay#2 | seaside, small town, storm | The second Pembrook Bay romance: the café's shy baker and a visiting wildlife photographer are stranded together by a storm during the harvest festival.
Winter at Pembrook Bay | Clara Wynn-Ashby | 2020-11-17 | Pembrook Bay#3 | seaside, Christmas, teacher | Pembrook Bay at Christmas: the village's grumpy lifeboat captain agrees to play Father Christmas for the children's party, and meets the new teacher.
Spring at Pembrook Bay | Clara Wynn-Ashby | 2024-04-16 | Pembrook Bay#4 | seaside, wedding, second chance | The Pembrook Bay series comes full circle as the café hosts a wedding and an old flame returns on the morning ferry.
A Most Improper Wager | Georgiana Pell | 2017-02-14 | The Hartley Sisters#1 | Regency, historical romance, wager | Regency romance: the eldest Hartley sister bets a notorious viscount that she can make him fall in love by the end of the season.
The Duke's Botanist | Georgiana Pell | 2019-05-21 | The Hartley Sisters#2 | Regency, historical romance, botany | The middle Hartley sister catalogues a duke's neglected glasshouse and finds that the duke is more interested in her than in his orchids.
Miss Hartley Declines | Georgiana Pell | 2022-02-08 | The Hartley Sisters#3 | Regency, historical romance, scandal | The youngest Hartley sister refuses every proposal of the season, until a rival novelist writes a scandalous book about her.
"Love, Coded" | Jamie Okonkwo-Bell | 2019-09-24 | Love Coded#1 | contemporary, fake dating, tech | Two rival app developers accidentally match on their own dating app and agree to fake a relationship to win a technology award.
Debug My Heart | Jamie Okonkwo-Bell | 2022-07-19 | Love Coded#2 | contemporary, startup, workplace | Sequel to Love, Coded: the couple's startup is bought by a giant company, and their relationship is written into the acquisition contract.
The Bookshop on Juniper Lane | Hannah Coutts | 2015-10-20 | - | bookshop, letters, widow | A widowed bookshop owner and a novelist with writer's block trade anonymous letters hidden in second-hand books.
Letters to the Lighthouse | Hannah Coutts | 2016-02-09 | - | lighthouse, radio, islands | Lonely lighthouse keepers on two islands fall in love over radio weather reports, and finally plan to meet on the mainland.
Second Chance Vineyard | Rosa Delgado | 2017-07-25 | - | vineyard, second chance, family | A sommelier returns to her family's struggling vineyard and must work beside the ex-boyfriend who bought half of it.
The Wedding Planner's Rules | Jamie Okonkwo-Bell | 2018-04-17 | - | weddings, contemporary, rules | A wedding planner with strict rules about never dating clients breaks all of them for a best man who hates weddings.
Paris in the Rain | Rosa Delgado | 2018-12-04 | - | Paris, strangers, one night | Two strangers miss the last train from Paris and spend one rainy night walking the city, then spend a year trying to find each other.
Snowed In at the Bakery | Clara Wynn-Ashby | 2019-12-10 | - | holiday, bakery, critic | A holiday romance: a baker and a grumpy food critic are trapped in her bakery by a blizzard on the night of his review.
The Marriage Clause | Hannah Coutts | 2020-05-26 | - | marriage of convenience, farm, friends to lovers | To inherit her grandmother's farm, a city lawyer must be married within a month, and her best friend volunteers.
Tango Lessons | Rosa Delgado | 2020-08-18 | - | dance, Buenos Aires, divorce | A recently divorced accountant takes tango lessons in Buenos Aires and falls for her patient, sharp-tongued instructor.
The Matchmaker of Mulberry Street | Georgiana Pell | 2021-02-16 | - | 1950s, New York, matchmaker | An elderly matchmaker in 1950s New York takes on her most hopeless client: her own stubborn grandson.
Sweet Tea and Sunsets | Hannah Coutts | 2021-06-22 | - | country music, single father, lake | A country singer hiding from fame rents a cabin on a Georgia lake owned by a single father who has never heard her songs.
"Enemies to Lovers, Table Nine" | Rosa Delgado | 2021-10-26 | - | enemies to lovers, restaurants, critics | Rival restaurant critics are seated at the same table by mistake and bet on who can write the harsher review.
The Spice Merchant's Daughter | Georgiana Pell | 2022-04-12 | - | historical romance, Lisbon, voyage | A historical romance set in 1600s Lisbon, where a spice merchant's daughter and a ship's cartographer plan a daring voyage.
Reply All | Jamie Okonkwo-Bell | 2023-01-10 | - | office romance, email, comedy | An office romance that begins when a mistaken reply-all email reveals one colleague's secret crush to the entire company.
The Summer of Second Chances | Hannah Coutts | 2023-06-13 | - | second chance, summer camp, parents | Former high-school sweethearts meet again as chaperones on their children's summer camp trip.
Ballroom Rivals | Rosa Delgado | 2023-09-26 | - | dance, rivals, competition | Two competitive ballroom dancers forced into a partnership must learn to trust each other before the national championship.
Under the Northern Lights | Clara Wynn-Ashby | 2024-01-30 | - | Arctic, travel, winter | A wildlife guide in Tromsø and a stranded travel blogger chase the aurora together through a long Arctic winter.
A Season of Small Wonders | Jamie Okonkwo-Bell | 2024-11-12 | - | florist, weather, spring | A florist who believes in signs and a sceptical weather forecaster fall in love over one unpredictable spring.
""",
    "History": """
Rivers of Empire: The Nile | Miriam Osei | 2016-08-16 | Rivers of Empire#1 | rivers, ancient Egypt, engineering | A history of how the Nile shaped empires from the pharaohs to the Aswan Dam, told through floods, harvests and engineering.
Rivers of Empire: The Yangtze | Miriam Osei | 2019-03-12 | Rivers of Empire#2 | rivers, China, dynasties | The second Rivers of Empire volume follows the Yangtze through dynasties, trade routes and the building of the Three Gorges Dam.
Rivers of Empire: The Danube | Miriam Osei | 2024-09-17 | Rivers of Empire#3 | rivers, Europe, Cold War | The third Rivers of Empire history traces the Danube from Roman frontier to Cold War border, through the cities built on its banks.
The Medieval Year: Winter and Spring | Hugh Ashdown | 2017-11-14 | The Medieval Year#1 | medieval, village life, England | A month-by-month history of ordinary life in an English village in 1340: ploughing, feast days, plague rumours and church courts.
The Medieval Year: Summer and Autumn | Hugh Ashdown | 2019-10-29 | The Medieval Year#2 | medieval, village life, Black Death | The second half of The Medieval Year: harvest, fairs, tithes and the arrival of the Black Death in the village.
The Spice Routes | Farah Qureshi | 2015-12-08 | - | trade, spices, Indian Ocean | How pepper, cloves and nutmeg connected Indonesia, India, Arabia and Europe, and why a single nut started wars.
Ink and Empire | Hugh Ashdown | 2016-03-29 | - | printing, books, China | A history of paper and printing from Han China to Gutenberg, and how cheap books changed what people believed.
The Silk Road Caravanserai | Farah Qureshi | 2017-06-20 | - | Silk Road, trade, travel | Life inside the roadside inns of the Silk Road: merchants, monks, animals and the languages they shared.
Longitude Men | Peter Lindell | 2018-01-23 | - | navigation, science, sea | The race to measure longitude at sea, told through the clockmakers, astronomers and sailors who staked their lives on it.
The Women Who Counted | Miriam Osei | 2018-08-07 | - | science, women, mathematics | The forgotten women computers who calculated artillery tables, star catalogues and rocket trajectories before electronic machines.
Cities of the Plague | Peter Lindell | 2019-01-29 | - | epidemics, cities, medicine | How epidemics from Athens to London reshaped city planning, sanitation and medicine, with lessons for the present.
Leaves of Empire | Farah Qureshi | 2019-07-09 | - | tea, trade, empire | The story of tea from Chinese monasteries to British breakfast tables, and the opium trade and plantations that paid for it.
The Railway Age | Hugh Ashdown | 2020-01-21 | - | railways, Victorian Britain, industry | How railways rebuilt Victorian Britain: time zones, seaside holidays, newspapers and the end of the coaching inn.
Viking Roads | Astrid Nyberg | 2020-06-30 | - | Vikings, trade, exploration | The Norse world beyond the raids: traders, settlers and travellers who reached Baghdad, Newfoundland and Constantinople.
The Forgotten Fleet | Farah Qureshi | 2020-10-13 | - | naval history, Ming China, exploration | A naval history of the Ming treasure fleets of Zheng He, and why China turned away from the sea.
"Stone, Bronze, Iron" | Astrid Nyberg | 2021-03-30 | - | prehistory, archaeology, tools | A readable introduction to prehistory that follows the tools people made and what they reveal about daily life.
Bread and Circuses | Peter Lindell | 2021-08-24 | - | ancient Rome, daily life, politics | Daily life in ancient Rome through its food supply, games and street politics, drawn from graffiti and grain records.
The Map Thieves | Astrid Nyberg | 2022-01-11 | - | maps, true crime, collectors | True stories of stolen maps and the collectors, spies and librarians who chased them across four centuries.
Salt: A Coastal History | Miriam Osei | 2022-06-07 | - | salt, coast, trade | How salt pans, fisheries and taxes shaped coastal communities from Roman Britain to Gandhi's Salt March.
The Lighthouse Builders | Peter Lindell | 2022-09-27 | - | engineering, lighthouses, sea | The engineers who built lighthouses on impossible rocks, and the keepers whose logbooks record two centuries of storms.
The Clockwork Revolution | Hugh Ashdown | 2023-02-28 | - | clocks, time, medieval Europe | How mechanical clocks reorganised work, prayer and sleep in medieval and early modern Europe.
Gold Rush Towns | Astrid Nyberg | 2023-05-30 | - | gold rush, boom towns, letters | Boom and bust in the gold-rush towns of California, Victoria and the Klondike, told through letters and ledgers.
The Codebreakers' Kitchen | Peter Lindell | 2023-09-05 | - | Second World War, codebreaking, social history | A social history of the women and men at Bletchley Park, from canteen rotas to the machines that shortened the war.
Silk and Steel: Samurai Lives | Farah Qureshi | 2023-11-21 | - | Japan, samurai, daily life | Everyday lives of samurai families in Edo Japan, beyond the sword: poetry, debt, tea and bureaucracy.
The Atlas of Lost Borders | Astrid Nyberg | 2024-03-26 | - | borders, maps, kingdoms | A history told through borders that no longer exist, from vanished kingdoms to treaty lines drawn and erased in a day.
The Great Exhibition Year | Hugh Ashdown | 2024-10-29 | - | Victorian Britain, inventions, London | A vivid account of 1851, when London's Crystal Palace gathered inventions, crowds and empires under glass.
""",
    "Cooking": """
Bread Every Day | Margit Holm | 2016-01-12 | Bread Every Day#1 | baking, bread, everyday | A baker's guide to simple daily loaves: no-knead breads, rye and flatbreads on a schedule that fits around a working week.
Sourdough Every Day | Margit Holm | 2018-03-06 | Bread Every Day#2 | baking, sourdough, fermentation | The second Bread Every Day book covers starter care, long fermentation and twenty sourdough loaves for the home oven.
Pastry Every Day | Margit Holm | 2021-10-12 | Bread Every Day#3 | baking, pastry, laminated dough | The third Bread Every Day volume moves to laminated doughs: croissants, Danish pastries and flaky pies made step by step.
Slow Pot Suppers | Daniel Ferreira | 2017-10-10 | Slow Pot Suppers#1 | stews, one pot, comfort food | One-pot stews, braises and beans that cook slowly while you do something else, from Portuguese feijoada to Irish stew.
Slow Pot Suppers: Vegetarian | Daniel Ferreira | 2020-09-22 | Slow Pot Suppers#2 | vegetarian, stews, one pot | The vegetarian follow-up to Slow Pot Suppers: lentil ragùs, squash curries and bean stews built for deep flavour.
The Vegetable Butcher's Table | Ines Carvalho | 2015-08-25 | - | vegetarian, vegetables, roasting | Plant-based cooking that treats vegetables like prime cuts: roasting, charring and carving cauliflower, celeriac and squash.
Small Plates of the Levant | Rami Haddad | 2016-07-05 | - | Middle Eastern, mezze, sharing | Mezze from Lebanon, Syria and Palestine: hummus variations, stuffed vine leaves, fattoush and pickles for sharing.
Noodle Atlas | Mei Lin Ward | 2017-04-18 | - | noodles, Asian, pasta | Hand-pulled, cut and rolled noodles from China, Japan, Italy and beyond, with broths and sauces for each.
The Thirty-Minute Kitchen | Sophie Brandt | 2017-08-29 | - | quick meals, weeknight, family | Weeknight dinners in half an hour: quick pastas, stir-fries and tray bakes with a shopping list for each week.
Preserve and Pickle | Margit Holm | 2018-05-15 | - | preserving, pickles, seasonal | A practical guide to jams, chutneys, ferments and pickles through the seasons, with safe canning explained.
Spice Box | Anjali Rao | 2018-10-16 | - | Indian, spices, curry | Cooking with an Indian spice box: how to temper, toast and blend spices for dals, curries and breakfasts.
Soup for Every Season | Sophie Brandt | 2019-02-19 | - | soup, seasonal, comfort food | Seventy soups from light spring broths to thick winter chowders, each with a bread or topping to match.
The Fishmonger's Kitchen | Daniel Ferreira | 2019-06-25 | - | fish, seafood, sustainable | How to buy, fillet and cook sustainable fish and shellfish simply, from grilled sardines to a proper fish pie.
Grill and Smoke | Rami Haddad | 2019-08-13 | - | barbecue, grilling, outdoor | Outdoor cooking over charcoal and wood: low-and-slow barbecue, smoked vegetables and marinades for summer.
Tofu and Tempeh | Mei Lin Ward | 2020-02-25 | - | vegan, protein, everyday | A vegan protein cookbook that makes tofu and tempeh crisp, smoky and full of flavour for everyday meals.
Cake Club | Sophie Brandt | 2020-04-21 | - | baking, cakes, celebration | Layer cakes, traybakes and celebration cakes tested by a neighbourhood baking club, with tips for decorating.
The Rice Book | Anjali Rao | 2020-12-15 | - | rice, world cooking, technique | Risotto, paella, biryani, sushi rice and congee: the techniques behind the world's great rice dishes.
Dumplings of the World | Mei Lin Ward | 2021-05-04 | - | dumplings, world cooking, folding | Gyoza, pierogi, momos, ravioli and empanadas, with folding diagrams and dipping sauces.
Feeding Little Ones | Sophie Brandt | 2021-07-27 | - | family, toddlers, batch cooking | Family meals that toddlers and adults can share, with batch cooking plans and gentle ways to introduce new foods.
Mediterranean Pantry | Ines Carvalho | 2022-03-08 | - | Mediterranean, pantry, healthy | Cooking from a well-stocked cupboard of olive oil, tinned fish, beans and grains, the Mediterranean way.
The Chocolate Lab | Ines Carvalho | 2022-08-16 | - | chocolate, desserts, food science | The science of chocolate for home cooks: tempering, ganache, truffles and desserts explained with experiments.
Street Food Tokyo | Mei Lin Ward | 2022-11-29 | - | Japanese, street food, ramen | Recipes from Tokyo's food stalls and izakayas: yakitori, okonomiyaki, onigiri and late-night ramen.
Salad Days | Ines Carvalho | 2023-04-04 | - | salads, seasonal, vegetarian | Substantial salads for every season with grains, roasted vegetables, cheeses and bright dressings.
The Batch Cook | Sophie Brandt | 2023-08-22 | - | batch cooking, freezer, meal planning | Cook once on Sunday and eat well all week: freezer-friendly stews, sauces and bakes with a weekly planner.
Fire and Flatbread | Rami Haddad | 2024-05-14 | - | bread, flatbread, open fire | Flatbreads from clay ovens, skillets and open fires, from naan and lavash to piadina and tortillas.
The Winter Larder | Margit Holm | 2024-10-15 | - | winter, preserving, festive baking | Warming recipes for the cold months from a well-stocked larder: roasts, pies, preserves and festive baking.
""",
    "Travel": """
Slow Rails: Europe | Nadia Kowalski | 2016-05-10 | Slow Rails#1 | trains, Europe, memoir | A travel memoir and practical guide to crossing Europe by slow trains, from Lisbon to Istanbul, with routes and tickets.
Slow Rails: Asia | Nadia Kowalski | 2019-04-30 | Slow Rails#2 | trains, Asia, sleeper trains | The second Slow Rails journey runs from Moscow to Beijing and on through Vietnam, with notes on sleeper trains and border crossings.
Slow Rails: The Americas | Nadia Kowalski | 2024-10-01 | Slow Rails#3 | trains, Americas, overland | The third Slow Rails book rides from Canada to Patagonia by train, bus and ferry, with routes for travellers who refuse to fly.
Walking the Coast: Wales | Owen Pritchard | 2018-04-03 | Walking the Coast#1 | walking, coast path, Wales | A walker's guide to the Wales Coast Path: daily stages, tide tables, cliff-top camps and village pubs.
Walking the Coast: Cornwall | Owen Pritchard | 2021-05-25 | Walking the Coast#2 | walking, coast path, Cornwall | The second Walking the Coast guide follows the South West Coast Path around Cornwall, with maps, stages and tide advice.
The Night Markets of Asia | Lucy Tan | 2015-07-14 | - | food travel, markets, Asia | A food-lover's travel guide to night markets from Taipei to Penang, with what to eat and how to order.
Islands of the North Atlantic | Owen Pritchard | 2016-09-06 | - | islands, puffins, ferries | Faroe, Shetland, Orkney and Iceland: ferry routes, puffin cliffs, weather and where to shelter from it.
A Year in Kyoto | Lucy Tan | 2017-03-14 | - | Japan, memoir, festivals | A writer spends twelve months in Kyoto and records temple festivals, seasonal food and the rhythms of a neighbourhood.
Desert Roads | Marco Bellini | 2017-11-28 | - | road trip, desert, American Southwest | A road-trip memoir across the deserts of the American Southwest, from slot canyons to abandoned mining towns.
The Alpine Hut Guide | Greta Hofer | 2018-06-19 | - | hiking, Alps, mountains | Hut-to-hut hiking in the Alps: routes through Switzerland, Austria and Italy, booking advice and packing lists.
Lisbon on Foot | Marco Bellini | 2018-11-13 | - | city guide, Lisbon, walking | Walking tours of Lisbon's hills and neighbourhoods, with tram tips, viewpoints and places for custard tarts.
Patagonia Wild | Greta Hofer | 2019-03-19 | - | trekking, camping, Patagonia | Trekking and camping in Patagonia: Torres del Paine, Fitz Roy and the Carretera Austral, with wind warnings.
Cycling the Danube | Greta Hofer | 2019-09-10 | - | cycling, rivers, Europe | A cycle-touring guide along the Danube from the Black Forest to Budapest, with daily stages and bike-friendly inns.
Solo in Morocco | Lucy Tan | 2020-01-14 | - | solo travel, Morocco, desert | Practical advice and stories for solo travellers in Morocco: medinas, mountain villages and desert camps.
The Fjord Road | Owen Pritchard | 2020-08-04 | - | road trip, Norway, fjords | Driving Norway's fjord coast: ferries, mountain passes, stave churches and camping under the midnight sun.
Family Camping Britain | Owen Pritchard | 2021-03-16 | - | camping, family, Britain | Where to camp with children in Britain, from beach sites to forest glades, with rainy-day plans.
Temples and Tuk-Tuks | Lucy Tan | 2021-09-28 | - | Southeast Asia, backpacking, temples | Two months in Cambodia, Laos and Thailand by bus, boat and tuk-tuk, with temple etiquette and food tips.
Weekend in Vienna | Marco Bellini | 2022-04-26 | - | city guide, Vienna, coffee houses | A compact city guide to Vienna: coffee houses, museums, concert tickets and a walk along the Ringstrasse.
The Island Hopper's Greece | Marco Bellini | 2022-07-05 | - | islands, Greece, ferries | Planning a Greek island-hopping trip: ferry timetables, quiet islands, beaches and tavernas away from the crowds.
Wild Swimming Europe | Greta Hofer | 2022-10-18 | - | swimming, lakes, outdoors | Lakes, rivers and sea pools across Europe for outdoor swimmers, with safety advice and access notes.
Along the Silk Road Today | Nadia Kowalski | 2023-03-07 | - | Central Asia, overland, trains | Overland travel through Uzbekistan, Kyrgyzstan and Kazakhstan, following the old Silk Road cities by train and shared taxi.
Hidden Paris | Marco Bellini | 2023-06-27 | - | city guide, Paris, walking | Secret courtyards, covered passages and small museums of Paris, arranged as walks through its arrondissements.
Road Trip New Zealand | Greta Hofer | 2023-10-10 | - | road trip, campervan, New Zealand | Campervan routes around New Zealand's North and South Islands, with hikes, hot springs and freedom camping rules.
Danube Delta Birding | Nadia Kowalski | 2016-11-22 | - | birdwatching, wetlands, Romania | A birdwatcher's travel guide to the Danube Delta: boats, guides, pelicans and the best seasons for migration.
The Hebrides by Ferry | Owen Pritchard | 2024-03-05 | - | islands, Scotland, cycling | Island-hopping through Scotland's Outer Hebrides by ferry and bicycle: beaches, standing stones and Gaelic place names.
Mountain Towns of the Andes | Lucy Tan | 2024-11-19 | - | mountains, South America, markets | A slow journey through the mountain towns of Peru, Bolivia and Ecuador, with altitude advice and market days.
""",
    "Children": """
Pip the Lighthouse Mouse | Hattie Moss | 2015-05-05 | Pip the Lighthouse Mouse#1 | picture book, animals, sea | A picture book about a tiny mouse who keeps the lighthouse lamp burning when the keeper falls asleep.
Pip and the Foggy Night | Hattie Moss | 2017-01-10 | Pip the Lighthouse Mouse#2 | picture book, animals, fog | Pip the Lighthouse Mouse guides a lost fishing boat home through thick fog, with help from a seagull.
Pip Goes to Sea | Hattie Moss | 2019-05-14 | Pip the Lighthouse Mouse#3 | picture book, animals, boats | Pip the Lighthouse Mouse sails on a little boat for the first time and learns that the sea is full of friends.
Pip's Winter Light | Hattie Moss | 2024-11-26 | Pip the Lighthouse Mouse#4 | picture book, winter, festival | Pip the Lighthouse Mouse prepares a festival of lights for the animals of the island on the longest night of winter.
The Clockwork Club | Felix Ambrose | 2018-02-20 | The Clockwork Club#1 | middle grade, robots, friendship | Four friends build a robot from junkyard parts and accidentally enter it in the county science fair.
The Clockwork Club and the Missing Gear | Felix Ambrose | 2020-03-31 | The Clockwork Club#2 | middle grade, robots, clues | The Clockwork Club's robot loses a vital gear, and the friends follow a trail of clues through their town to find it.
The Clockwork Club Takes Flight | Felix Ambrose | 2022-05-17 | The Clockwork Club#3 | middle grade, inventions, teamwork | The Clockwork Club builds a flying machine for a school competition, and learns about teamwork when it crashes in the pond.
The Bear Who Couldn't Sleep | Hattie Moss | 2015-10-13 | - | bedtime, picture book, bears | A bedtime picture book about a bear who tries every trick to fall asleep for winter, and finally counts the stars.
Dinosaur Detectives | Felix Ambrose | 2016-08-30 | - | dinosaurs, detectives, museum | Two young cousins use fossils, footprints and clever thinking to solve the mystery of a museum's missing dinosaur egg.
The Girl Who Talked to Trees | Nell Okafor | 2017-06-13 | - | middle grade, nature, adventure | A middle-grade adventure about a girl who hears the old oak trees whispering and must save her forest from developers.
Counting with Crabs | Hattie Moss | 2017-09-19 | - | toddlers, counting, rhyme | A rhyming counting book for toddlers featuring ten busy crabs building a sandcastle on the beach.
Space Cadets Academy | Toby Wren | 2018-05-29 | - | chapter book, space, funny | A funny chapter book about a boy who enrols at a school for astronauts and keeps floating off in zero gravity.
The Grumpy Dragon | Toby Wren | 2018-09-25 | - | picture book, dragons, sharing | A picture book about a grumpy little dragon who learns that sharing his treasure is more fun than guarding it.
Maya and the Moon Kite | Nell Okafor | 2019-01-08 | - | picture book, moon, imagination | Maya builds a kite big enough to reach the moon, and the moon sends a message back down the string.
The Secret Garden Club | Nell Okafor | 2019-08-20 | - | gardening, school, friendship | Children at a city school turn an abandoned rooftop into a garden, growing vegetables, friendships and a surprise.
Monsters Under the Stairs | Toby Wren | 2020-02-04 | - | bedtime, monsters, bravery | A gently spooky story about friendly monsters who live under the stairs and help a child be brave at bedtime.
The Great Cake Race | Hattie Moss | 2020-07-21 | - | picture book, farm animals, funny | Animal friends race to deliver a birthday cake across the farm without eating it on the way.
Tilly's Time Machine | Felix Ambrose | 2021-01-19 | - | time travel, history, chapter book | Tilly's grandfather's old wardrobe turns out to be a time machine, and her history homework gets very exciting.
Ocean Explorers | Nell Okafor | 2021-06-08 | - | non-fiction, ocean, animals | A non-fiction picture book about whales, octopuses and coral reefs, with fold-out pages and fun facts.
The Owl Who Loved the Sun | Toby Wren | 2021-10-05 | - | picture book, owls, being different | A little owl who prefers daytime to night learns that being different is something to be proud of.
The Knights of Pudding Lane | Felix Ambrose | 2022-02-22 | - | medieval, knights, funny | Three young squires in a medieval castle kitchen defend it from a band of pie-stealing rats.
The Robot Who Wanted a Puppy | Toby Wren | 2022-09-06 | - | robots, friendship, picture book | A lonely garden robot asks everyone in town how to get a puppy, and finds a friend in an unexpected place.
Junior Detectives of Willow Street | Nell Okafor | 2023-04-18 | - | detectives, treehouse, mystery | Three neighbours start a detective agency in a treehouse and solve the case of the vanishing garden gnomes.
Rainy Day Rescue | Hattie Moss | 2023-07-11 | - | picture book, boats, floods | When the river floods, a brave little tugboat helps the farm animals reach higher ground.
Stargazing for Kids | Nell Okafor | 2023-12-05 | - | non-fiction, astronomy, activities | A first astronomy book for children: constellations, planets and the Moon, with simple activities for clear nights.
The Snow Fox's Secret | Toby Wren | 2024-02-13 | - | picture book, winter, forest | A picture book about a snow fox who leads a lost girl home through the winter forest and asks her to keep a secret.
""",
}


@dataclass
class Book:
    """One catalogue entry."""

    item_id: str
    title: str
    author: str
    genre: str
    description: str
    tags: list[str]
    series: str
    volume: int
    published: datetime


def parse_catalogue() -> list[Book]:
    """The books of :data:`CATALOGUE`, numbered ``B001``... in genre order."""
    books: list[Book] = []
    for genre, block in CATALOGUE.items():
        for line in block.strip().splitlines():
            title, author, date, series, tags, description = (part.strip() for part in line.split(" | "))
            name, _, volume = series.partition("#") if series != "-" else ("", "", "0")
            books.append(
                Book(
                    item_id=f"B{len(books) + 1:03d}",
                    title=title.strip('"'),
                    author=author,
                    genre=genre,
                    description=description,
                    tags=[t.strip() for t in tags.split(",")],
                    series=name,
                    volume=int(volume),
                    published=datetime.fromisoformat(date).replace(tzinfo=UTC),
                )
            )
    return books


def write_items(books: list[Book], path: Path) -> None:
    """Write ``items.csv`` (``genres`` and ``tags`` are ``|``-separated)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            ["item_id", "title", "author", "genres", "description", "tags", "series", "volume", "timestamp"]
        )
        for b in books:
            writer.writerow(
                [
                    b.item_id,
                    b.title,
                    b.author,
                    b.genre,
                    b.description,
                    "|".join(b.tags),
                    b.series,
                    b.volume or "",
                    b.published.date().isoformat(),
                ]
            )


def simulate(books: list[Book], rng: np.random.Generator) -> list[tuple[str, str, str, datetime]]:
    """Simulated ``(user_id, item_id, event, time)`` rows, in time order per user."""
    genres = list(CATALOGUE)
    genre_of = np.array([genres.index(b.genre) for b in books])
    published = np.array([b.published.timestamp() for b in books])
    # A fixed, skewed appeal per book (Zipf over a random order within the whole catalogue).
    appeal = 1.0 / (1.0 + rng.permutation(len(books))) ** 0.7
    by_series: dict[str, list[int]] = {}
    for i, b in enumerate(books):
        if b.series:
            by_series.setdefault(b.series, []).append(i)
    for members in by_series.values():
        members.sort(key=lambda i: books[i].volume)
    span = (END - START).total_seconds()
    rows = []
    for u in range(N_USERS):
        taste = rng.dirichlet(np.full(len(genres), 0.25))
        t = START.timestamp() + rng.uniform(0, 0.85) * span
        budget = 3 + int(rng.geometric(1 / 22))
        seen: list[int] = []
        while len(seen) < budget:
            t += rng.exponential(6 * 86400)
            if t > END.timestamp():
                break
            choice = _next_book(books, seen, by_series, genre_of, published, appeal, taste, t, rng)
            if choice is None:
                continue
            seen.append(choice)
            event = "purchase" if rng.random() < 0.35 else "view"
            rows.append((f"U{u + 1:04d}", books[choice].item_id, event, datetime.fromtimestamp(int(t), UTC)))
    return rows


def _next_book(
    books: list[Book],
    seen: list[int],
    by_series: dict[str, list[int]],
    genre_of: np.ndarray,
    published: np.ndarray,
    appeal: np.ndarray,
    taste: np.ndarray,
    t: float,
    rng: np.random.Generator,
) -> int | None:
    """One simulated choice at time ``t`` (``None`` when nothing is available)."""
    available = published <= t
    available[seen] = False
    if not available.any():
        return None
    # Sequential habit: carry on with a series the user has started.
    if seen and rng.random() < 0.6:
        for i in reversed(seen[-5:]):
            series = books[i].series
            if series:
                nxt = [j for j in by_series[series] if available[j]]
                if nxt and books[nxt[0]].volume > books[i].volume:
                    return nxt[0]
    if rng.random() < 0.05:
        return int(rng.choice(np.flatnonzero(available)))
    genre = rng.choice(len(taste), p=taste)
    pool = np.flatnonzero(available & (genre_of == genre))
    if not len(pool):
        pool = np.flatnonzero(available)
    age_days = (t - published[pool]) / 86400
    weight = appeal[pool] * (1 + 6 * np.exp(-age_days / 45))  # new releases sell for a few weeks
    pick = int(rng.choice(pool, p=weight / weight.sum()))
    series = books[pick].series
    if series and rng.random() < 0.8:
        # Most readers start a series at its first unread volume.
        first = next((j for j in by_series[series] if available[j]), pick)
        pick = first
    return pick


def write_interactions(rows: list[tuple[str, str, str, datetime]], path: Path) -> None:
    """Write ``interactions.csv`` sorted by time, then user."""
    rows = sorted(rows, key=lambda r: (r[3], r[0]))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        for user, item, event, when in rows:
            writer.writerow([user, item, event, when.strftime("%Y-%m-%dT%H:%M:%SZ")])


def main(out_dir: Path = OUT) -> tuple[Path, Path]:
    """Write ``items.csv`` and ``interactions.csv`` into ``out_dir`` (default: beside this script)."""
    books = parse_catalogue()
    assert len(books) >= 200 and len({b.item_id for b in books}) == len(books)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_items(books, out_dir / "items.csv")
    rows = simulate(books, np.random.default_rng(SEED))
    write_interactions(rows, out_dir / "interactions.csv")
    users = len({r[0] for r in rows})
    days = math.ceil((END - START) / timedelta(days=1))
    logger.info("Wrote %d items, %d users, %d interactions over %d days", len(books), users, len(rows), days)
    return out_dir / "items.csv", out_dir / "interactions.csv"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
