"""Build requests.jsonl: hand-written natural requests, expected answers computed with pandas.

    python benchmarks/data/natural/build.py

Every request below was written by hand the way people type (lower case, synonyms, typos in
ordinary words, loose yes/no claims, follow-ups), not produced from our question templates.
Beside each one is the pandas expression over ``df`` (the table as ``pandas.read_csv`` reads
it) whose value becomes the request's ``expected`` answer. The build refuses ambiguous answers:
superlatives and comparisons end in ``nlargest/nsmallest(1, keep='all')...item()`` (a tie
raises), top-k results must hold exactly k rows with ``keep='all'``, and an entity named in an
expression must be named in the request (or the request follows one that names it).

Never train on this set or tune templates, rules or defaults to it: it measures how the graph
does on phrasings it has not seen.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from benchmarks.natural import KINDS, ROUTES, evaluate, load_table  # noqa: E402

OUT = Path(__file__).resolve().parent / "requests.jsonl"
CARS = "examples/data/cars.csv"
PENGUINS = "tests/data/penguins.csv"
AIRPORTS = "tests/data/airports.csv"
NAME_COLUMN = {CARS: "Name", AIRPORTS: "name", PENGUINS: None}
ROUTE_OF = {"claim": "validate", "summary_row": "summarize", "summary_group": "summarize"}

# (id, table, request, kind, pandas expression over df, follows)
# The route follows from the kind: claim -> validate, summary_* -> summarize, the rest -> qa.
R: list[tuple[str, str, str, str, str, str | None]] = [
    # ============================================================================ cars
    # ---------------------------------------------------------------- lookups
    ("c01", CARS, "whats the gas mileage on the datsun 310", "lookup",
     "df.loc[df.Name=='datsun 310','Miles_per_Gallon'].item()", None),
    ("c02", CARS, "how heavy is the amc gremlin", "lookup",
     "df.loc[df.Name=='amc gremlin','Weight_in_lbs'].item()", None),
    ("c03", CARS, "and how much horsepower does it have?", "lookup",
     "df.loc[df.Name=='amc gremlin','Horsepower'].item()", "c02"),
    ("c04", CARS, "what year did the toyota celica gt come out", "lookup",
     "df.loc[df.Name=='toyota celica gt','Year'].item()", None),
    ("c05", CARS, "where's the saab 99e from", "lookup",
     "df.loc[df.Name=='saab 99e','Origin'].item()", None),
    ("c06", CARS, "how many cylinders in the mazda rx-7 gs", "lookup",
     "df.loc[df.Name=='mazda rx-7 gs','Cylinders'].item()", None),
    ("c07", CARS, "0 to 60 time for the bmw 2002?", "lookup",
     "df.loc[df.Name=='bmw 2002','Acceleration'].item()", None),
    ("c08", CARS, "engine size of the pontiac catalina", "lookup",
     "df.loc[df.Name=='pontiac catalina','Displacement'].item()", None),
    ("c09", CARS, "hp on the chevrolet citation", "lookup",
     "df.loc[df.Name=='chevrolet citation','Horsepower'].item()", None),
    ("c10", CARS, "and its mpg?", "lookup",
     "df.loc[df.Name=='chevrolet citation','Miles_per_Gallon'].item()", "c09"),
    ("c11", CARS, "how much does the cadillac eldorado weigh", "lookup",
     "df.loc[df.Name=='cadillac eldorado','Weight_in_lbs'].item()", None),
    ("c12", CARS, "fuel efficency of the honda prelude", "lookup",
     "df.loc[df.Name=='honda prelude','Miles_per_Gallon'].item()", None),
    ("c13", CARS, "mpg of the honda civic 1300?", "lookup",
     "df.loc[df.Name=='honda civic 1300','Miles_per_Gallon'].item()", None),
    ("c14", CARS, "what about the honda civic 1500 gl", "lookup",
     "df.loc[df.Name=='honda civic 1500 gl','Miles_per_Gallon'].item()", "c13"),
    ("c15", CARS, "is the volvo diesel american or european or what", "lookup",
     "df.loc[df.Name=='volvo diesel','Origin'].item()", None),
    # ---------------------------------------------------------------- empty cells
    ("c16", CARS, "whats the horsepower of the ford pinto", "empty_cell",
     "df.loc[df.Name=='ford pinto','Horsepower'].item()", None),
    ("c17", CARS, "mpg for the saab 900s?", "empty_cell",
     "df.loc[df.Name=='saab 900s','Miles_per_Gallon'].item()", None),
    ("c18", CARS, "how many hp does the renault 18i make", "empty_cell",
     "df.loc[df.Name=='renault 18i','Horsepower'].item()", None),
    # ---------------------------------------------------------------- not in the table
    ("c19", CARS, "what was the sticker price of the honda civic", "unanswerable", "None", None),
    ("c20", CARS, "top speed of the bmw 320i?", "unanswerable", "None", None),
    ("c21", CARS, "how many doors does the toyota starlet have", "unanswerable", "None", None),
    ("c22", CARS, "whats the mpg of the tesla model 3", "unanswerable", "None", None),
    # ---------------------------------------------------------------- comparisons
    ("c23", CARS, "which is heavier, the ford torino or the amc rebel sst?", "compare",
     "df.set_index('Name').loc[['ford torino','amc rebel sst'],'Weight_in_lbs']"
     ".nlargest(1,keep='all').index.item()", None),
    ("c24", CARS, "what gets better gas mileage, the datsun 210 or the toyota corolla tercel",
     "compare",
     "df.set_index('Name').loc[['datsun 210','toyota corolla tercel'],'Miles_per_Gallon']"
     ".nlargest(1,keep='all').index.item()", None),
    ("c25", CARS, "more powerfull: pontiac grand prix or chrysler cordoba?", "compare",
     "df.set_index('Name').loc[['pontiac grand prix','chrysler cordoba'],'Horsepower']"
     ".nlargest(1,keep='all').index.item()", None),
    ("c26", CARS, "which one accelerates quicker, vw rabbit custom or fiat strada custom",
     "compare",
     "df.set_index('Name').loc[['vw rabbit custom','fiat strada custom'],'Acceleration']"
     ".nsmallest(1,keep='all').index.item()", None),
    ("c27", CARS, "which is older, the datsun 510 or the datsun pl510", "compare",
     "df.set_index('Name').loc[['datsun 510','datsun pl510'],'Year']"
     ".nsmallest(1,keep='all').index.item()", None),
    ("c28", CARS, "bigger engine - buick century or plymouth fury?", "compare",
     "df.set_index('Name').loc[['buick century','plymouth fury'],'Displacement']"
     ".nlargest(1,keep='all').index.item()", None),
    # ---------------------------------------------------------------- superlatives
    ("c29", CARS, "which european car gets the best gas mileage", "superlative",
     "df[df.Origin=='Europe'].set_index('Name').Miles_per_Gallon"
     ".nlargest(1,keep='all').index.item()", None),
    ("c30", CARS, "heaviest japanese car?", "superlative",
     "df[df.Origin=='Japan'].set_index('Name').Weight_in_lbs"
     ".nlargest(1,keep='all').index.item()", None),
    ("c31", CARS, "whats the lightest car in the whole list", "superlative",
     "df.set_index('Name').Weight_in_lbs.nsmallest(1,keep='all').index.item()", None),
    ("c32", CARS, "most powerful car from 1982", "superlative",
     "df[df.Year==1982].set_index('Name').Horsepower.nlargest(1,keep='all').index.item()",
     None),
    ("c33", CARS, "which v8 has the best mpg", "superlative",
     "df[df.Cylinders==8].set_index('Name').Miles_per_Gallon"
     ".nlargest(1,keep='all').index.item()", None),
    ("c34", CARS, "slowest accelerating american car", "superlative",
     "df[df.Origin=='USA'].set_index('Name').Acceleration.nlargest(1,keep='all').index.item()",
     None),
    ("c35", CARS, "which japanese car has the least horsepower", "superlative",
     "df[df.Origin=='Japan'].set_index('Name').Horsepower.nsmallest(1,keep='all').index.item()",
     None),
    # ---------------------------------------------------------------- aggregates
    ("c36", CARS, "average mpg of japanese cars", "aggregate",
     "round(df.loc[df.Origin=='Japan','Miles_per_Gallon'].mean(),2)", None),
    ("c37", CARS, "whats the avg weight of cars from 1976", "aggregate",
     "round(df.loc[df.Year==1976,'Weight_in_lbs'].mean(),2)", None),
    ("c38", CARS, "total horsepower of all the european cars added up", "aggregate",
     "df.loc[df.Origin=='Europe','Horsepower'].sum()", None),
    ("c39", CARS, "worst gas mileage of any 4 cylinder car", "aggregate",
     "df.loc[df.Cylinders==4,'Miles_per_Gallon'].min()", None),
    ("c40", CARS, "max weight for a 6 cyl car", "aggregate",
     "df.loc[df.Cylinders==6,'Weight_in_lbs'].max()", None),
    ("c41", CARS, "mean 0-60 time for eight cylinder cars", "aggregate",
     "round(df.loc[df.Cylinders==8,'Acceleration'].mean(),2)", None),
    ("c42", CARS, "and for the four cylinder ones?", "aggregate",
     "round(df.loc[df.Cylinders==4,'Acceleration'].mean(),2)", "c41"),
    # ---------------------------------------------------------------- counts
    ("c43", CARS, "how many cars are from japan", "count", "int((df.Origin=='Japan').sum())",
     None),
    ("c44", CARS, "how many 6 cylinder cars r there", "count", "int((df.Cylinders==6).sum())",
     None),
    ("c45", CARS, "number of cars from 1980", "count", "int((df.Year==1980).sum())", None),
    ("c46", CARS, "how many european cars get over 30 mpg", "count",
     "int(((df.Origin=='Europe')&(df.Miles_per_Gallon>30)).sum())", None),
    ("c47", CARS, "how many cars weigh more than 4500 pounds", "count",
     "int((df.Weight_in_lbs>4500).sum())", None),
    # ---------------------------------------------------------------- distinct values
    ("c48", CARS, "how many different origins are there", "distinct", "df.Origin.nunique()",
     None),
    ("c49", CARS, "how many diffrent model years does the data cover", "distinct",
     "df.Year.nunique()", None),
    ("c50", CARS, "how many distinct cylinder counts show up", "distinct",
     "df.Cylinders.nunique()", None),
    # ---------------------------------------------------------------- lists and top-k
    ("c51", CARS, "list the european cars from 1982", "list",
     "df.loc[(df.Origin=='Europe')&(df.Year==1982),'Name'].tolist()", None),
    ("c52", CARS, "show me all the 3 cylinder cars", "list",
     "df.loc[df.Cylinders==3,'Name'].tolist()", None),
    ("c53", CARS, "any cars with 5 cylinders?", "list",
     "df.loc[df.Cylinders==5,'Name'].tolist()", None),
    ("c54", CARS, "top 3 heaviest cars", "topk",
     "df.nlargest(3,'Weight_in_lbs',keep='all').Name.tolist()", None),
    ("c55", CARS, "5 most fuel efficient cars?", "topk",
     "df.nlargest(5,'Miles_per_Gallon',keep='all').Name.tolist()", None),
    ("c56", CARS, "the two quickest cars off the line", "topk",
     "df.nsmallest(2,'Acceleration',keep='all').Name.tolist()", None),
    # ---------------------------------------------------------------- statistic by group
    ("c57", CARS, "average horsepower by origin", "groupby",
     "df.groupby('Origin').Horsepower.mean().round(2)", None),
    ("c58", CARS, "how many cars per origin", "groupby", "df.groupby('Origin').size()", None),
    ("c59", CARS, "avg mpg for each number of cylinders", "groupby",
     "df.groupby('Cylinders').Miles_per_Gallon.mean().round(2)", None),
    ("c60", CARS, "heaviest weight in each origin group", "groupby",
     "df.groupby('Origin').Weight_in_lbs.max()", None),
    # ---------------------------------------------------------------- claims
    ("c61", CARS, "the mazda rx-4 has 8 cylinders right?", "claim",
     "bool(df.loc[df.Name=='mazda rx-4','Cylinders'].item()==8)", None),
    ("c62", CARS, "is it true that the honda civic cvcc gets 33 mpg", "claim",
     "bool(df.loc[df.Name=='honda civic cvcc','Miles_per_Gallon'].item()==33)", None),
    ("c63", CARS, "the chevrolet impala weighs over 4000 lbs, yes?", "claim",
     "bool(df.loc[df.Name=='chevrolet impala','Weight_in_lbs'].item()>4000)", None),
    ("c64", CARS, "peugeot 504 is a japanese car isnt it", "claim",
     "bool(df.loc[df.Name=='peugeot 504','Origin'].item()=='Japan')", None),
    ("c65", CARS, "true or false: the dodge rampage is a 1982 model", "claim",
     "bool(df.loc[df.Name=='dodge rampage','Year'].item()==1982)", None),
    ("c66", CARS, "the datsun 1200 has less than 60 hp, correct?", "claim",
     "bool(df.loc[df.Name=='datsun 1200','Horsepower'].item()<60)", None),
    ("c67", CARS, "pretty sure the ford f250 gets like 10 mpg", "claim",
     "bool(df.loc[df.Name=='ford f250','Miles_per_Gallon'].item()==10)", None),
    # ---------------------------------------------------------------- summaries
    ("c68", CARS, "give me a quick rundown of the volkswagen rabbit", "summary_row",
     "df.loc[df.Name=='volkswagen rabbit',['Miles_per_Gallon','Cylinders','Horsepower',"
     "'Weight_in_lbs','Year','Origin']].to_dict('records')[0]", None),
    ("c69", CARS, "so whats the deal with the ford mustang ii", "summary_row",
     "df.loc[df.Name=='ford mustang ii',['Miles_per_Gallon','Cylinders','Horsepower',"
     "'Weight_in_lbs','Year']].to_dict('records')[0]", None),
    ("c70", CARS, "can u sum up the japanese cars for me", "summary_group",
     "{'cars': int((df.Origin=='Japan').sum()),"
     " 'mean mpg': round(df.loc[df.Origin=='Japan','Miles_per_Gallon'].mean(),2),"
     " 'mean horsepower': round(df.loc[df.Origin=='Japan','Horsepower'].mean(),2)}", None),
    ("c71", CARS, "overview of the 5 cylinder cars pls", "summary_group",
     "{'cars': int((df.Cylinders==5).sum()),"
     " 'mean mpg': round(df.loc[df.Cylinders==5,'Miles_per_Gallon'].mean(),2),"
     " 'mean weight': round(df.loc[df.Cylinders==5,'Weight_in_lbs'].mean(),2)}", None),
    # ---------------------------------------------------------------- free questions
    ("c72", CARS, "what is unusual about the ford pinto?", "free", "None", None),
    ("c73", CARS, "which car would u recommend for a long road trip", "free", "None", None),
    # ============================================================================ penguins
    # (no name column: requests are about species, islands, sexes and years)
    # ---------------------------------------------------------------- counts
    ("p01", PENGUINS, "how many penguins are in the data set", "count", "len(df)", None),
    ("p02", PENGUINS, "how many gentoos are there", "count", "int((df.species=='Gentoo').sum())",
     None),
    ("p03", PENGUINS, "and how heavy are they on average?", "aggregate",
     "round(df.loc[df.species=='Gentoo','body_mass_g'].mean(),2)", "p02"),
    ("p04", PENGUINS, "what about the chinstraps?", "aggregate",
     "round(df.loc[df.species=='Chinstrap','body_mass_g'].mean(),2)", "p03"),
    ("p05", PENGUINS, "how many penguins live on dream island", "count",
     "int((df.island=='Dream').sum())", None),
    ("p06", PENGUINS, "number of female adelie penguins", "count",
     "int(((df.species=='Adelie')&(df.sex=='female')).sum())", None),
    ("p07", PENGUINS, "how many penguins were measured in 2009", "count",
     "int((df.year==2009).sum())", None),
    ("p08", PENGUINS, "how many penguins on biscoe weigh more than 5 kg", "count",
     "int(((df.island=='Biscoe')&(df.body_mass_g>5000)).sum())", None),
    ("p09", PENGUINS, "how many male chinstraps r in there", "count",
     "int(((df.species=='Chinstrap')&(df.sex=='male')).sum())", None),
    ("p10", PENGUINS, "penguins with flippers longer than 210mm, how many?", "count",
     "int((df.flipper_length_mm>210).sum())", None),
    # ---------------------------------------------------------------- distinct values
    ("p11", PENGUINS, "how many different species are there", "distinct", "df.species.nunique()",
     None),
    ("p12", PENGUINS, "how many islands does the data cover", "distinct", "df.island.nunique()",
     None),
    ("p13", PENGUINS, "in how many diferent years were penguins measured", "distinct",
     "df.year.nunique()", None),
    # ---------------------------------------------------------------- aggregates
    ("p14", PENGUINS, "avg flipper length for adelie penguins", "aggregate",
     "round(df.loc[df.species=='Adelie','flipper_length_mm'].mean(),2)", None),
    ("p15", PENGUINS, "and for gentoos?", "aggregate",
     "round(df.loc[df.species=='Gentoo','flipper_length_mm'].mean(),2)", "p14"),
    ("p16", PENGUINS, "what is the mean bill length on torgersen", "aggregate",
     "round(df.loc[df.island=='Torgersen','bill_length_mm'].mean(),2)", None),
    ("p17", PENGUINS, "heaviest chinstrap, how much did it weigh", "aggregate",
     "df.loc[df.species=='Chinstrap','body_mass_g'].max()", None),
    ("p18", PENGUINS, "shortest flipper of any penguin", "aggregate",
     "df.flipper_length_mm.min()", None),
    ("p19", PENGUINS, "total body mass of all the penguins on dream, in grams", "aggregate",
     "df.loc[df.island=='Dream','body_mass_g'].sum()", None),
    ("p20", PENGUINS, "average weight of the male penguins", "aggregate",
     "round(df.loc[df.sex=='male','body_mass_g'].mean(),2)", None),
    ("p21", PENGUINS, "how deep are gentoo bills on average", "aggregate",
     "round(df.loc[df.species=='Gentoo','bill_depth_mm'].mean(),2)", None),
    ("p22", PENGUINS, "longest bill measured in 2008", "aggregate",
     "df.loc[df.year==2008,'bill_length_mm'].max()", None),
    # ---------------------------------------------------------------- superlatives
    ("p23", PENGUINS, "which species has the heaviest penguin", "superlative",
     "df.set_index('species').body_mass_g.nlargest(1,keep='all').index.item()", None),
    ("p24", PENGUINS, "which island is the penguin with the longest bill from", "superlative",
     "df.set_index('island').bill_length_mm.nlargest(1,keep='all').index.item()", None),
    ("p25", PENGUINS, "what species is the penguin with the deepest bill", "superlative",
     "df.set_index('species').bill_depth_mm.nlargest(1,keep='all').index.item()", None),
    ("p26", PENGUINS, "is the lightest penguin a male or a female", "superlative",
     "df.set_index('sex').body_mass_g.nsmallest(1,keep='all').index.item()", None),
    ("p27", PENGUINS, "what year was the penguin with the longest flippers measured",
     "superlative",
     "df.set_index('year').flipper_length_mm.nlargest(1,keep='all').index.item()", None),
    ("p28", PENGUINS, "which island had the penguin with the shortest bill", "superlative",
     "df.set_index('island').bill_length_mm.nsmallest(1,keep='all').index.item()", None),
    # ---------------------------------------------------------------- comparisons (of groups)
    ("p29", PENGUINS, "which is heavier on average, adelie or chinstrap?", "compare",
     "df[df.species.isin(['Adelie','Chinstrap'])].groupby('species').body_mass_g.mean()"
     ".nlargest(1,keep='all').index.item()", None),
    ("p30", PENGUINS, "who has longer bills on avg, gentoo or chinstrap", "compare",
     "df[df.species.isin(['Gentoo','Chinstrap'])].groupby('species').bill_length_mm.mean()"
     ".nlargest(1,keep='all').index.item()", None),
    ("p31", PENGUINS, "are penguins on biscoe or dream heavier on average", "compare",
     "df[df.island.isin(['Biscoe','Dream'])].groupby('island').body_mass_g.mean()"
     ".nlargest(1,keep='all').index.item()", None),
    ("p32", PENGUINS, "do males or females have longer flippers, on average", "compare",
     "df[df.sex.isin(['male','female'])].groupby('sex').flipper_length_mm.mean()"
     ".nlargest(1,keep='all').index.item()", None),
    # ---------------------------------------------------------------- statistic by group
    ("p33", PENGUINS, "average body mass by species", "groupby",
     "df.groupby('species').body_mass_g.mean().round(2)", None),
    ("p34", PENGUINS, "mean flipper length per island", "groupby",
     "df.groupby('island').flipper_length_mm.mean().round(2)", None),
    ("p35", PENGUINS, "how many penguins of each species", "groupby",
     "df.groupby('species').size()", None),
    ("p36", PENGUINS, "avg bill depth, males vs females", "groupby",
     "df.groupby('sex').bill_depth_mm.mean().round(2)", None),
    ("p37", PENGUINS, "max body mass for each year", "groupby",
     "df.groupby('year').body_mass_g.max()", None),
    # ---------------------------------------------------------------- lists and top-k
    ("p38", PENGUINS, "which islands do gentoo penguins live on", "list",
     "sorted(df.loc[df.species=='Gentoo','island'].unique())", None),
    ("p39", PENGUINS, "what species live on dream island", "list",
     "sorted(df.loc[df.island=='Dream','species'].unique())", None),
    ("p40", PENGUINS, "which islands have adelies", "list",
     "sorted(df.loc[df.species=='Adelie','island'].unique())", None),
    ("p41", PENGUINS, "give me the 3 biggest body masses in the data", "topk",
     "df.nlargest(3,'body_mass_g',keep='all').body_mass_g.tolist()", None),
    ("p42", PENGUINS, "the 2 shortest bills?", "topk",
     "df.nsmallest(2,'bill_length_mm',keep='all').bill_length_mm.tolist()", None),
    # ---------------------------------------------------------------- claims
    ("p43", PENGUINS, "gentoo penguins only live on biscoe right?", "claim",
     "bool((df.loc[df.species=='Gentoo','island']=='Biscoe').all())", None),
    ("p44", PENGUINS, "is it true that chinstraps are heavier than adelies on average", "claim",
     "bool(df.loc[df.species=='Chinstrap','body_mass_g'].mean()"
     ">df.loc[df.species=='Adelie','body_mass_g'].mean())", None),
    ("p45", PENGUINS, "the heaviest penguin weighs over 6 kg right?", "claim",
     "bool(df.body_mass_g.max()>6000)", None),
    ("p46", PENGUINS, "there are more than 20 adelie penguins in the data, correct?", "claim",
     "bool((df.species=='Adelie').sum()>20)", None),
    ("p47", PENGUINS, "all the penguins on torgersen are adelies?", "claim",
     "bool((df.loc[df.island=='Torgersen','species']=='Adelie').all())", None),
    ("p48", PENGUINS, "avg gentoo bill length is above 50mm yes?", "claim",
     "bool(df.loc[df.species=='Gentoo','bill_length_mm'].mean()>50)", None),
    ("p49", PENGUINS, "were any penguins measured in 2010?", "claim",
     "bool((df.year==2010).any())", None),
    # ---------------------------------------------------------------- summaries
    ("p50", PENGUINS, "tell me about the chinstrap penguins", "summary_group",
     "{'penguins': int((df.species=='Chinstrap').sum()),"
     " 'mean body mass': round(df.loc[df.species=='Chinstrap','body_mass_g'].mean(),2),"
     " 'mean bill length': round(df.loc[df.species=='Chinstrap','bill_length_mm'].mean(),2)}",
     None),
    ("p51", PENGUINS, "quick overview of the penguins on biscoe island", "summary_group",
     "{'penguins': int((df.island=='Biscoe').sum()),"
     " 'mean body mass': round(df.loc[df.island=='Biscoe','body_mass_g'].mean(),2),"
     " 'mean flipper length': round(df.loc[df.island=='Biscoe','flipper_length_mm'].mean(),2)}",
     None),
    ("p52", PENGUINS, "summarize the gentoo data for me", "summary_group",
     "{'penguins': int((df.species=='Gentoo').sum()),"
     " 'mean body mass': round(df.loc[df.species=='Gentoo','body_mass_g'].mean(),2),"
     " 'mean flipper length': round(df.loc[df.species=='Gentoo','flipper_length_mm'].mean(),2)}",
     None),
    ("p53", PENGUINS, "describe the female penguins", "summary_group",
     "{'penguins': int((df.sex=='female').sum()),"
     " 'mean body mass': round(df.loc[df.sex=='female','body_mass_g'].mean(),2)}", None),
    # ---------------------------------------------------------------- not in the table
    ("p54", PENGUINS, "how old is the oldest penguin", "unanswerable", "None", None),
    ("p55", PENGUINS, "how many emperor penguins are there", "unanswerable", "None", None),
    ("p56", PENGUINS, "whats the average wingspan of adelie penguins", "unanswerable", "None",
     None),
    ("p57", PENGUINS, "how many penguins live on deception island", "unanswerable", "None",
     None),
    # ---------------------------------------------------------------- free questions
    ("p58", PENGUINS, "what do gentoo penguins eat", "free", "None", None),
    ("p59", PENGUINS, "why are gentoos so much bigger than adelies", "free", "None", None),
    # ============================================================================ airports
    # (pandas reads 300 rows; the app's loader drops the second "Greenville Municipal" (MI),
    # so no request counts or averages over all rows, over MI or over Greenville)
    # ---------------------------------------------------------------- lookups
    ("a01", AIRPORTS, "which city is tweed-new haven in", "lookup",
     "df.loc[df.name=='Tweed-New Haven','city'].item()", None),
    ("a02", AIRPORTS, "what state is truckee-tahoe in", "lookup",
     "df.loc[df.name=='Truckee-Tahoe','state'].item()", None),
    ("a03", AIRPORTS, "iata code for tulsa international?", "lookup",
     "df.loc[df.name=='Tulsa International','iata'].item()", None),
    ("a04", AIRPORTS, "and its latitude?", "lookup",
     "df.loc[df.name=='Tulsa International','latitude'].item()", "a03"),
    ("a05", AIRPORTS, "how far north is nome", "lookup",
     "df.loc[df.name=='Nome','latitude'].item()", None),
    ("a06", AIRPORTS, "longitude of key west international", "lookup",
     "df.loc[df.name=='Key West International','longitude'].item()", None),
    ("a07", AIRPORTS, "what state is bettles in", "lookup",
     "df.loc[df.name=='Bettles','state'].item()", None),
    ("a08", AIRPORTS, "which country is prachinburi in", "lookup",
     "df.loc[df.name=='Prachinburi','country'].item()", None),
    ("a09", AIRPORTS, "what state is prachinburi in", "empty_cell",
     "df.loc[df.name=='Prachinburi','state'].item()", None),
    ("a10", AIRPORTS, "and the city?", "empty_cell",
     "df.loc[df.name=='Prachinburi','city'].item()", "a09"),
    ("a11", AIRPORTS, "what airport has the code pdx", "lookup",
     "df.loc[df.iata=='PDX','name'].item()", None),
    ("a12", AIRPORTS, "what city is kona international at keahole in", "lookup",
     "df.loc[df.name=='Kona International At Keahole','city'].item()", None),
    ("a13", AIRPORTS, "which city does george bush intercontinental serve", "lookup",
     "df.loc[df.name=='George Bush Intercontinental','city'].item()", None),
    ("a14", AIRPORTS, "whats the code for chicago midway", "lookup",
     "df.loc[df.name=='Chicago Midway','iata'].item()", None),
    # ---------------------------------------------------------------- not in the table
    ("a15", AIRPORTS, "how long is the runway at boulder muni", "unanswerable", "None", None),
    ("a16", AIRPORTS, "whats the elevation of aspen-pitkin co/sardy", "unanswerable", "None",
     None),
    ("a17", AIRPORTS, "what state is heathrow in", "unanswerable", "None", None),
    ("a18", AIRPORTS, "how many passengers does phoenix sky harbor international get a year",
     "unanswerable", "None", None),
    ("a19", AIRPORTS, "whats the busiest airport here", "unanswerable", "None", None),
    # ---------------------------------------------------------------- comparisons
    ("a20", AIRPORTS, "which is further north, juneau international or valdez", "compare",
     "df.set_index('name').loc[['Juneau International','Valdez'],'latitude']"
     ".nlargest(1,keep='all').index.item()", None),
    ("a21", AIRPORTS, "is spokane intl or portland intl more northerly", "compare",
     "df.set_index('name').loc[['Spokane Intl','Portland Intl'],'latitude']"
     ".nlargest(1,keep='all').index.item()", None),
    ("a22", AIRPORTS, "which one is farther west, san jose international or metropolitan "
     "oakland international", "compare",
     "df.set_index('name').loc[['San Jose International',"
     "'Metropolitan Oakland International'],'longitude'].nsmallest(1,keep='all').index.item()",
     None),
    ("a23", AIRPORTS, "what's more southern, key west international or kendall-tamiami "
     "executive", "compare",
     "df.set_index('name').loc[['Key West International','Kendall-Tamiami Executive'],"
     "'latitude'].nsmallest(1,keep='all').index.item()", None),
    ("a24", AIRPORTS, "lehigh valley international or wilkes-barre wyoming valley, which is "
     "further east", "compare",
     "df.set_index('name').loc[['Lehigh Valley International','Wilkes-Barre Wyoming Valley'],"
     "'longitude'].nlargest(1,keep='all').index.item()", None),
    # ---------------------------------------------------------------- superlatives
    ("a25", AIRPORTS, "which airport is the furthest north", "superlative",
     "df.set_index('name').latitude.nlargest(1,keep='all').index.item()", None),
    ("a26", AIRPORTS, "most southern airport in the us", "superlative",
     "df[df.country=='USA'].set_index('name').latitude.nsmallest(1,keep='all').index.item()",
     None),
    ("a27", AIRPORTS, "westernmost airport in california", "superlative",
     "df[df.state=='CA'].set_index('name').longitude.nsmallest(1,keep='all').index.item()",
     None),
    ("a28", AIRPORTS, "which texas airport is farthest south", "superlative",
     "df[df.state=='TX'].set_index('name').latitude.nsmallest(1,keep='all').index.item()",
     None),
    ("a29", AIRPORTS, "northernmost airport in wisconsin", "superlative",
     "df[df.state=='WI'].set_index('name').latitude.nlargest(1,keep='all').index.item()",
     None),
    ("a30", AIRPORTS, "easternmost airport in maine?", "superlative",
     "df[df.state=='ME'].set_index('name').longitude.nlargest(1,keep='all').index.item()",
     None),
    ("a31", AIRPORTS, "southernmost one in alaska", "superlative",
     "df[df.state=='AK'].set_index('name').latitude.nsmallest(1,keep='all').index.item()",
     None),
    # ---------------------------------------------------------------- counts
    ("a32", AIRPORTS, "how many airports are in alaska", "count", "int((df.state=='AK').sum())",
     None),
    ("a33", AIRPORTS, "how many airports in tx", "count", "int((df.state=='TX').sum())", None),
    ("a34", AIRPORTS, "and in oklahoma?", "count", "int((df.state=='OK').sum())", "a33"),
    ("a35", AIRPORTS, "number of airports in kansas", "count", "int((df.state=='KS').sum())",
     None),
    ("a36", AIRPORTS, "how many airports are outside the usa", "count",
     "int((df.country!='USA').sum())", None),
    ("a37", AIRPORTS, "how many california airports are north of 38 degrees latitude", "count",
     "int(((df.state=='CA')&(df.latitude>38)).sum())", None),
    ("a38", AIRPORTS, "how many ohio airports r there", "count", "int((df.state=='OH').sum())",
     None),
    # ---------------------------------------------------------------- distinct values
    ("a39", AIRPORTS, "how many states does this airport list cover", "distinct",
     "df.state.nunique()", None),
    ("a40", AIRPORTS, "how many countries are there", "distinct", "df.country.nunique()", None),
    ("a41", AIRPORTS, "in alaska, how many different cities have airports", "distinct",
     "df.loc[df.state=='AK','city'].nunique()", None),
    # ---------------------------------------------------------------- aggregates
    ("a42", AIRPORTS, "average latitude of the airports in alaska", "aggregate",
     "round(df.loc[df.state=='AK','latitude'].mean(),2)", None),
    ("a43", AIRPORTS, "whats the mean longitude of airports in florida", "aggregate",
     "round(df.loc[df.state=='FL','longitude'].mean(),2)", None),
    ("a44", AIRPORTS, "highest latitude in montana", "aggregate",
     "df.loc[df.state=='MT','latitude'].max()", None),
    ("a45", AIRPORTS, "lowest latitude among hawaii airports", "aggregate",
     "df.loc[df.state=='HI','latitude'].min()", None),
    # ---------------------------------------------------------------- lists and top-k
    ("a46", AIRPORTS, "list the airports in hawaii", "list",
     "df.loc[df.state=='HI','name'].tolist()", None),
    ("a47", AIRPORTS, "which airports are in rhode island", "list",
     "df.loc[df.state=='RI','name'].tolist()", None),
    ("a48", AIRPORTS, "what airports are in connecticut", "list",
     "df.loc[df.state=='CT','name'].tolist()", None),
    ("a49", AIRPORTS, "list all the airports in wyoming", "list",
     "df.loc[df.state=='WY','name'].tolist()", None),
    ("a50", AIRPORTS, "airports in alaska north of 65 degrees?", "list",
     "df.loc[(df.state=='AK')&(df.latitude>65),'name'].tolist()", None),
    ("a51", AIRPORTS, "3 northernmost airports", "topk",
     "df.nlargest(3,'latitude',keep='all').name.tolist()", None),
    ("a52", AIRPORTS, "top 3 most southern airports in florida", "topk",
     "df[df.state=='FL'].nsmallest(3,'latitude',keep='all').name.tolist()", None),
    # ---------------------------------------------------------------- statistic by group
    ("a53", AIRPORTS, "how many airports does each of texas, oklahoma and kansas have",
     "groupby", "df[df.state.isin(['TX','OK','KS'])].groupby('state').size()", None),
    ("a54", AIRPORTS, "avg latitude of idaho airports vs utah airports", "groupby",
     "df[df.state.isin(['ID','UT'])].groupby('state').latitude.mean().round(2)", None),
    # ---------------------------------------------------------------- claims
    ("a55", AIRPORTS, "boulder muni is in colorado right?", "claim",
     "bool(df.loc[df.name=='Boulder Muni','state'].item()=='CO')", None),
    ("a56", AIRPORTS, "is it true that tulsa international is in oklahoma", "claim",
     "bool(df.loc[df.name=='Tulsa International','state'].item()=='OK')", None),
    ("a57", AIRPORTS, "chicago midway is in indiana, isnt it", "claim",
     "bool(df.loc[df.name=='Chicago Midway','state'].item()=='IN')", None),
    ("a58", AIRPORTS, "the code for portland intl is pdx, correct?", "claim",
     "bool(df.loc[df.name=='Portland Intl','iata'].item()=='PDX')", None),
    ("a59", AIRPORTS, "nome is above 65 degrees north?", "claim",
     "bool(df.loc[df.name=='Nome','latitude'].item()>65)", None),
    ("a60", AIRPORTS, "true or false: juneau international is in alaska", "claim",
     "bool(df.loc[df.name=='Juneau International','state'].item()=='AK')", None),
    ("a61", AIRPORTS, "there are more than 20 airports in california right", "claim",
     "bool((df.state=='CA').sum()>20)", None),
    # ---------------------------------------------------------------- summaries
    ("a62", AIRPORTS, "give me a rundown of key west international", "summary_row",
     "df.loc[df.name=='Key West International',['iata','city','state','latitude',"
     "'longitude']].to_dict('records')[0]", None),
    ("a63", AIRPORTS, "can you give me the lowdown on san jose international", "summary_row",
     "df.loc[df.name=='San Jose International',['iata','city','state','latitude',"
     "'longitude']].to_dict('records')[0]", None),
    ("a64", AIRPORTS, "whats the story with the hawaii airports", "summary_group",
     "{'airports': int((df.state=='HI').sum()), 'names': df.loc[df.state=='HI','name'].tolist()}",
     None),
    ("a65", AIRPORTS, "summarize the colorado airports", "summary_group",
     "{'airports': int((df.state=='CO').sum()),"
     " 'mean latitude': round(df.loc[df.state=='CO','latitude'].mean(),2)}", None),
    # ---------------------------------------------------------------- free questions
    ("a66", AIRPORTS, "which airport would be best for a ski trip", "free", "None", None),
    ("a67", AIRPORTS, "any airports here worth visiting for the view?", "free", "None", None),
]


def _strings(expr: str) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(expr, mode="eval"))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _check(rec: dict, value, df, seen: set[str]) -> None:
    """Refuse a request whose answer is ambiguous or whose record is inconsistent."""
    rid, kind, expr = rec["id"], rec["kind"], rec["pandas"]
    assert kind in KINDS and rec["route"] in ROUTES, rid
    assert rec["follows"] is None or rec["follows"] in seen, f"{rid}: follows a later id"
    if kind in ("unanswerable", "free"):
        assert expr == "None", f"{rid}: no table answer expected"
    elif kind == "empty_cell":
        assert expr != "None" and value is None, f"{rid}: the cell is not empty"
    else:
        assert value is not None, f"{rid}: no answer"
    if kind in ("superlative", "compare"):
        assert "keep='all'" in expr and expr.endswith(".item()"), f"{rid}: ties not refused"
    if kind == "topk":
        k = int(re.search(r"n(?:largest|smallest)\((\d+)", expr).group(1))
        assert "keep='all'" in expr and len(value) == k, f"{rid}: a tie at the k-th row"
    if kind == "list":
        assert isinstance(value, list) and value, f"{rid}: empty list"
    names = NAME_COLUMN[rec["table"]]
    if names is not None and rec["follows"] is None:
        known = set(df[names].astype(str))
        for s in _strings(expr):
            if s in known:
                assert s.lower() in rec["request"].lower(), f"{rid}: {s!r} not in request"


def build() -> list[dict]:
    """Evaluate every request's expression on its table; return the records in order."""
    frames = {}
    out, seen = [], set()
    for rid, table, request, kind, expr, follows in R:
        assert rid not in seen, f"duplicate id {rid}"
        df = frames.setdefault(table, load_table(table))
        value = evaluate(expr, df)
        rec = {"id": rid, "table": table, "request": request,
               "route": ROUTE_OF.get(kind, "qa"), "kind": kind, "expected": value,
               "pandas": expr, "follows": follows}
        _check(rec, value, df, seen)
        seen.add(rid)
        out.append(rec)
    return out


def counts_table(records: list[dict]) -> str:
    """The README's table: requests per kind (rows) and table (columns), with totals."""
    tables = list(dict.fromkeys(r["table"] for r in records))
    short = [Path(t).stem for t in tables]
    lines = ["| kind | route | " + " | ".join(short) + " | all |",
             "|---|---|" + "---:|" * (len(tables) + 1)]
    for kind in KINDS:
        n = [sum(r["kind"] == kind and r["table"] == t for r in records) for t in tables]
        lines.append(f"| {kind} | {ROUTE_OF.get(kind, 'qa')} | "
                     + " | ".join(map(str, n)) + f" | {sum(n)} |")
    n = [sum(r["table"] == t for r in records) for t in tables]
    lines.append("| **all** | | " + " | ".join(map(str, n)) + f" | {len(records)} |")
    return "\n".join(lines)


def main() -> None:
    records = build()
    tmp = OUT.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tmp.replace(OUT)
    print(f"wrote {len(records)} requests to {OUT.relative_to(ROOT)}")
    print(counts_table(records))


if __name__ == "__main__":
    main()
